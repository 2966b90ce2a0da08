"""SIGTERM and SIGHUP end a run as Ctrl-C does.

A run's driver may be stopped by a time limit (``timeout``), a service manager, a preempted
machine or a closed terminal: these send SIGTERM or SIGHUP, whose default ends the process at
once, leaving ``run.json`` at ``running`` and Ray's processes behind. While a run goes on
(:func:`as_interrupt`), either signal is handed to whatever handles SIGINT at that moment
(Ray Tune's: it saves the experiment's state and stops the trials), so the run ends
``interrupted``, with the ``tuner resume`` hint, exit 130.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


_RETRY_S = 0.02  # a Ctrl-C that came inside importlib's own code is delivered again this much later


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT's handler while a command or a run goes on: Python's own (``KeyboardInterrupt``),
    except while the main thread is running importlib's own code. A ``KeyboardInterrupt``
    raised there (in a module lock's weakref callback, between a lock's taking and its
    ``try``) leaves the import system's locks taken, and a second thread importing at the same
    time (tuner imports Ray Tune in the background while the data loads) then waits on them for
    ever, with the main thread: a Ctrl-C 2 s into ``tuner run`` hung it. There the interrupt is
    delivered again 20 ms later, until it lands in ordinary code (a module's own body
    included: an exception leaving it unwinds the import system's ``finally`` blocks)."""
    if frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
        again = threading.Timer(_RETRY_S, _thread.interrupt_main, args=(signal.SIGINT,))
        again.daemon = True
        again.start()
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_exits(code: int) -> Iterator[None]:
    """Within the block (a command's exit functions, after its work is done), a Ctrl-C ends the
    process at once with status ``code``, its output flushed. Raised as ``KeyboardInterrupt``
    it would land inside an exit function, which Python prints as a traceback; that includes a
    Ctrl-C that came during the imports and is delivered again (:func:`interrupt`) after a short
    command has already ended. Outside the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_ctrl_c(signum: int, frame: FrameType | None) -> None:
        exit_now(code)

    before = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before if before is not None else signal.SIG_DFL)


def exit_now(code: int) -> NoReturn:
    """End the process at once with status ``code``: its output flushed (a closed stream, as
    with ``tuner space | head``, is passed over), no exit functions, no tearing down of modules."""
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def take_ctrl_c() -> None:
    """Make :func:`interrupt` SIGINT's handler where Python's own is (in the main thread)."""
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, interrupt)


@contextlib.contextmanager
def as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP act as SIGINT (Ctrl-C), and Ctrl-C never lands
    inside the import system (:func:`interrupt`, where Python's own handler was); outside, as
    before. In a thread other than the main one (where Python cannot set handlers) nothing
    changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ctrl_c = signal.getsignal(signal.SIGINT)
    take_ctrl_c()
    before = {sig: signal.signal(sig, _as_sigint) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if signal.getsignal(signal.SIGINT) is interrupt and ctrl_c is not interrupt:
            signal.signal(signal.SIGINT, ctrl_c)


def active() -> bool:
    """Whether an :func:`as_interrupt` block is in force (SIGTERM is handed to SIGINT's handler)."""
    return signal.getsignal(signal.SIGTERM) is _as_sigint
