"""``python -m tuner`` is the ``tuner`` command (:func:`entry`; ``tuner.cli.main`` does the work)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

from tuner import streams
from tuner.cli import main

log = logging.getLogger(__name__)


def entry() -> NoReturn:
    """The ``tuner`` command (and ``python -m tuner``): :func:`main`, then a quick exit.

    Once the command is done and its files are written, Ray is shut down here rather than by
    its exit hook (which first sleeps half a second, then waits a second on an idle process),
    the exit handlers run, and the process ends without the interpreter's second of tearing
    down modules: ~3 s of a sweep's end to end become ~0.4 s (BENCHMARKS.md i).
    """
    streams.guard()  # a reader that goes away (`| head`, a closed terminal) fails nothing
    code = main()
    from tuner.ray import cluster

    try:
        cluster.disconnect()
    except Exception as e:  # the command's work is done: a failing shutdown is only logged
        log.debug("Ray's shutdown failed: %s", e)
    atexit._run_exitfuncs()  # what the user's code and the libraries registered
    for thread in threading.enumerate():  # a thread still writing finishes first
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(timeout=10)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed: `tuner space | head`
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
