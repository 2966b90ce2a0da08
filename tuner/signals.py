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
import time
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


_RETRY_S = 0.02  # a Ctrl-C put off (inside an import) is delivered again this much later
_IMPORT_WAIT_S = 5.0  # and within a module's body, at most this long: then it lands there
_put_off_since: float | None = None  # when the Ctrl-C being put off came
_retry: threading.Timer | None = None  # its delivery again, while one is due


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGINT's handler while a command, a run or a call of tuner's API goes on: Python's own
    (``KeyboardInterrupt``), except while the main thread is importing a module. There the
    interrupt is delivered again 20 ms later, until it lands outside every import:

    - in importlib's own code (a module lock's weakref callback, between a lock's taking and its
      ``try``), a ``KeyboardInterrupt`` leaves the import system's locks taken, and a second
      thread importing at the same time (tuner imports Ray Tune in the background while the data
      loads) then waits on them for ever, with the main thread: a Ctrl-C 2 s into ``tuner run``
      hung it. Put off for as long as it takes.
    - in a module's own body, it leaves that module's package half made: the module is taken
      out, what it had imported stays. In a process that goes on (a notebook's kernel), the
      next call failed on it until the kernel was restarted (``numpy`` without ``matrix``, after
      a Ctrl-C 0.1 s into ``tuner.run``). Put off for :data:`_IMPORT_WAIT_S` at most, so a module
      that never ends its import (one waiting on input) can still be interrupted."""
    global _put_off_since, _retry
    _retry = None  # this is it, or a Ctrl-C of its own: either way one is being delivered now
    importing = _importing(frame)
    if importing:
        now = time.monotonic()
        _put_off_since = now if _put_off_since is None else _put_off_since
        if importing == "importlib" or now - _put_off_since < _IMPORT_WAIT_S:
            _retry = threading.Timer(_RETRY_S, _thread.interrupt_main, args=(signal.SIGINT,))
            _retry.daemon = True
            _retry.start()
            return
    _put_off_since = None
    raise KeyboardInterrupt


def _take_back_retry() -> bool:
    """Cancel the delivery again of a Ctrl-C put off (:func:`interrupt`); whether one was due."""
    global _put_off_since, _retry
    due, _retry = _retry, None
    if due is None:
        return False
    due.cancel()
    _put_off_since = None
    return True


def _importing(frame: FrameType | None) -> str:
    """``"importlib"`` when ``frame`` is importlib's own code, ``"module"`` when a module is being
    imported below it (a frame of importlib's further down the stack), else ``""``."""
    if frame is None:
        return ""
    if frame.f_code.co_filename.startswith("<frozen importlib"):
        return "importlib"
    below = frame.f_back
    while below is not None:
        if below.f_code.co_filename.startswith("<frozen importlib"):
            return "module"
        below = below.f_back
    return ""


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


def take_ctrl_c() -> bool:
    """Make :func:`interrupt` SIGINT's handler where Python's own is (in the main thread);
    whether it was made so now."""
    if threading.current_thread() is threading.main_thread() and (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        signal.signal(signal.SIGINT, interrupt)
        return True
    return False


@contextlib.contextmanager
def ctrl_c_taken() -> Iterator[None]:
    """Within the block (a call of tuner's API, from a notebook or a script), :func:`interrupt`
    handles Ctrl-C where Python's own handler did, so it never lands inside an import; outside,
    Python's own again. A handler of someone else's is left alone, as outside the main thread.
    A Ctrl-C still put off when the call ends (the import was its last step, or it failed
    meanwhile) ends it as ``KeyboardInterrupt``: the user asked it to stop."""
    if not take_ctrl_c():
        yield
        return
    try:
        yield
    finally:
        due = _take_back_retry()  # a call that ended before its Ctrl-C was delivered again
        if signal.getsignal(signal.SIGINT) is interrupt:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if due:  # delivered here, not 20 ms later in whatever the caller (a notebook's kernel) runs next
            raise KeyboardInterrupt


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
