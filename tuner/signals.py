"""SIGTERM and SIGHUP end a run as Ctrl-C does.

A run's driver may be stopped by a time limit (``timeout``), a service manager, a preempted
machine or a closed terminal: these send SIGTERM or SIGHUP, whose default ends the process at
once, leaving ``run.json`` at ``running`` and Ray's processes behind. While a run goes on
(:func:`as_interrupt`), either signal is handed to whatever handles SIGINT at that moment
(Ray Tune's: it saves the experiment's state and stops the trials), so the run ends
``interrupted``, with the ``tuner resume`` hint, exit 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP act as SIGINT (Ctrl-C); outside, as before. In a
    thread other than the main one (where Python cannot set handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _as_sigint) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def active() -> bool:
    """Whether an :func:`as_interrupt` block is in force (SIGTERM is handed to SIGINT's handler)."""
    return signal.getsignal(signal.SIGTERM) is _as_sigint
