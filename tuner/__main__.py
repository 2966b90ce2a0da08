"""``python -m tuner`` is the ``tuner`` command (:func:`entry`; ``tuner.cli.main`` does the work)."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from typing import NoReturn

from tuner import signals

signals.take_ctrl_c()  # from here a Ctrl-C never lands inside the import system (signals.interrupt)

log = logging.getLogger(__name__)


def entry() -> NoReturn:
    """The ``tuner`` command (and ``python -m tuner``): :func:`main`, then a quick exit.

    Once the command is done and its files are written, Ray is shut down here rather than by
    its exit hook (which first sleeps half a second, then waits a second on an idle process),
    the exit handlers run, and the process ends without the interpreter's second of tearing
    down modules: ~3 s of a sweep's end to end become ~0.4 s (BENCHMARKS.md i).
    """
    try:  # the command's modules: a Ctrl-C meanwhile ends it as one during the command does
        import tuner.ray.deferred  # noqa: F401  # first: pandas and Ray Data, loaded on first use
        from tuner import streams
        from tuner.cli import main
    except KeyboardInterrupt:
        print("tuner: interrupted", file=sys.stderr)
        signals.exit_now(130)  # EXIT_INTERRUPTED (tuner.cli.status), which is not imported yet
    streams.guard()  # a reader that goes away (`| head`, a closed terminal) fails nothing
    code = main()
    try:  # the command's work is done: a Ctrl-C now only cuts its shutdown short
        _shut_down(code)
    except KeyboardInterrupt:
        pass
    signals.exit_now(code)


def _shut_down(code: int) -> None:
    from tuner.ray import cluster

    try:
        cluster.disconnect(process_ends=True)
    except Exception as e:  # a failing shutdown is only logged
        log.debug("Ray's shutdown failed: %s", e)
    with signals.ctrl_c_exits(code):  # not a KeyboardInterrupt inside an exit function: a traceback
        atexit._run_exitfuncs()  # what the user's code and the libraries registered
    for thread in threading.enumerate():  # a thread still writing finishes first
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(timeout=10)
    logging.shutdown()
    cluster.end_left()  # an instance of the command's own, left running for the exit functions


if __name__ == "__main__":
    entry()
