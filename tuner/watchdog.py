"""A trial's watchdog: a function that goes ``trial_timeout`` seconds without a report is
ended as hung (:func:`reports_watched`), and says so where the trial's record finds it."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuner.records import TIMEOUT_FILE, TIMEOUT_TRACE_FILE
from tuner.trial import Run

# The exit status of a trial's process ended by reports_watched (as a shell's timeout(1) exits).
TIMEOUT_EXIT = 124


@contextlib.contextmanager
def reports_watched(run: Run, timeout_s: float | None, folder: Path | None) -> Iterator[None]:
    """End this trial's process when the block goes ``timeout_s`` seconds without a report
    (``run.last_report``; the first report counts from the run's making): a function that hangs
    (a deadlock, a read that never returns, a loop that never reports) would hold its CPUs and
    the sweep's end for ever. A hung thread cannot be interrupted from Python, so the process
    ends (exit status :data:`TIMEOUT_EXIT`), after the reason is written to the trial's
    :data:`~tuner.records.TIMEOUT_FILE` and its output: Ray Tune then counts a failure of the
    trial, retried from its last checkpoint up to ``max_failures`` times like a lost process,
    and :func:`tuner.results.trial_error` reads the reason back. No limit when ``timeout_s``
    is None.

    The watcher is a Python thread, which a call that never lets Python run (a regular
    expression backtracking for ever, a C extension's loop holding the interpreter's lock)
    would starve: behind it, :mod:`faulthandler`'s watchdog, a thread of C, ends the process
    :data:`TIMEOUT_GRACE_S` later, writing where each thread was to the trial's
    :data:`~tuner.records.TIMEOUT_TRACE_FILE` (re-armed by the watcher at each report)."""
    if not timeout_s:
        yield
        return
    done = threading.Event()
    trace = _trace_file(folder)
    armed = [run.last_report]

    def arm() -> None:
        if trace is not None:
            faulthandler.dump_traceback_later(timeout_s + TIMEOUT_GRACE_S, exit=True, file=trace)

    def watch() -> None:
        while not done.wait(min(1.0, timeout_s / 10)):
            if time.monotonic() - run.last_report > timeout_s and not done.is_set():
                _timed_out(folder, f"no report within {timeout_s:g} s (trial_timeout): stopped as hung")
            if run.last_report != armed[0]:  # a report since: the watchdog's time starts again
                armed[0] = run.last_report
                arm()

    arm()
    watcher = threading.Thread(target=watch, name="tuner-trial-timeout", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        if trace is not None:
            faulthandler.cancel_dump_traceback_later()
            _drop_if_empty(trace)


TIMEOUT_GRACE_S = 5.0  # the watchdog's time beyond trial_timeout: the Python watcher says it first


def _trace_file(folder: Path | None) -> Any:
    """The open file :mod:`faulthandler` writes the hung threads' stacks to (None: no folder)."""
    if folder is None:
        return None
    try:
        return open(folder / TIMEOUT_TRACE_FILE, "w", encoding="utf-8")  # held open while the trial runs
    except OSError:
        return None


def _drop_if_empty(trace: Any) -> None:
    """Close the watchdog's file, and remove it when it was never written (the trial reported)."""
    try:
        trace.close()
        path = Path(trace.name)
        if path.stat().st_size == 0:
            path.unlink()
    except OSError:
        pass


def _timed_out(folder: Path | None, reason: str) -> None:
    """Write ``reason`` where the trial's record finds it, then end the process at once."""
    try:
        if folder is not None:
            from tuner.files import write_text

            write_text(folder / TIMEOUT_FILE, reason + "\n")
            with contextlib.suppress(OSError):  # the watchdog's file, never written: Python said it
                if (folder / TIMEOUT_TRACE_FILE).stat().st_size == 0:
                    (folder / TIMEOUT_TRACE_FILE).unlink()
        print(f"tuner: {reason}", file=sys.stderr, flush=True)  # output.txt while output_kept holds it
    finally:
        os._exit(TIMEOUT_EXIT)
