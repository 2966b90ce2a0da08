"""tuner.watchdog: a trial that goes trial_timeout seconds without a report is ended as hung."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_WATCHED = """
import sys, time
from pathlib import Path
from tuner.watchdog import reports_watched
from tuner.trial import Run

run = Run(metric="m", mode="max")
folder = Path(sys.argv[1])
with reports_watched(run, float(sys.argv[2]), folder):
    for _ in range(int(sys.argv[3])):  # reports every 0.2 s, then hangs
        time.sleep(0.2)
        run.last_report = time.monotonic()
    time.sleep(float(sys.argv[4]))
print("returned")
"""


@pytest.mark.parametrize(
    ("reports", "hang_s", "ended"),
    [(10, 30.0, True), (10, 0.0, False)],
    ids=["hangs-after-reporting", "reports-then-returns"],
)
def test_reports_watched_ends_a_process_that_goes_silent_past_the_timeout(
    tmp_path: Path, reports: int, hang_s: float, ended: bool
) -> None:
    """Ten reports 0.2 s apart under a 1-s limit keep the process; an hour's silence after
    them ends it with exit status 124 within about a second of the limit, the reason written
    to the trial's folder and its output first."""
    import subprocess
    import time

    from tuner.watchdog import TIMEOUT_EXIT

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _WATCHED, str(tmp_path), "1", str(reports), str(hang_s)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    marker = tmp_path / "timed-out.txt"
    if ended:
        assert done.returncode == TIMEOUT_EXIT, done.stderr
        assert "returned" not in done.stdout
        assert marker.read_text() == "no report within 1 s (trial_timeout): stopped as hung\n"
        assert not (tmp_path / "timed-out.trace").exists()  # the watchdog's file, never written: gone
        assert "tuner: no report within 1 s" in done.stderr
        assert took < 2 + 10 * 0.2 + 10, took  # interpreter start, the reports, the limit: not the hang
    else:
        assert done.returncode == 0 and "returned" in done.stdout, done.stderr
        assert not marker.exists()


def test_no_timeout_starts_no_watcher() -> None:
    import threading

    from tuner.trial import Run
    from tuner.watchdog import reports_watched

    before = threading.active_count()
    with reports_watched(Run(metric="m", mode="max"), None, None):
        assert threading.active_count() == before


_STARVED = """
import re, sys
from pathlib import Path
from tuner import watchdog as worker
from tuner.trial import Run

worker.TIMEOUT_GRACE_S = 0.5
with worker.reports_watched(Run(metric="m", mode="max"), 1.0, Path(sys.argv[1])):
    re.match(r"(a+)+$", "a" * 60 + "b")  # backtracks for ever, never letting another Python thread run
print("returned")
"""


def test_a_call_that_never_lets_python_run_is_ended_by_the_watchdog_with_its_stack(tmp_path: Path) -> None:
    """A regular expression backtracking for ever holds the interpreter's lock: the Python
    watcher never runs, and faulthandler's watchdog ends the process (exit 1) half a second
    after the limit, with where the thread hung in timed-out.trace, which the trial's record
    reads as the reason."""
    import subprocess
    import time

    from tuner.results import trial_error

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _STARVED, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "returned" not in done.stdout, (done.returncode, done.stderr)
    assert time.monotonic() - started < 30
    trace = (tmp_path / "timed-out.trace").read_text()
    assert trace.startswith("Timeout (0:00:01") and "<string>" in trace, trace
    (tmp_path / "error.txt").write_text("ray.exceptions.ActorDiedError: The actor died unexpectedly.\n")
    assert trial_error(tmp_path / "error.txt") == (
        "no report within its trial_timeout: stopped as hung, in a call that never let Python run "
        "(where each thread was: timed-out.trace)"
    )


def test_a_trial_that_reports_leaves_no_watchdog_file(tmp_path: Path) -> None:
    from tuner.trial import Run
    from tuner.watchdog import reports_watched

    with reports_watched(Run(metric="m", mode="max"), 30.0, tmp_path):
        assert (tmp_path / "timed-out.trace").exists()  # armed
    assert list(tmp_path.iterdir()) == []
