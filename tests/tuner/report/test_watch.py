"""``tuner report RUN_DIR --watch``: rewritten while the run goes on, stopped when it is over or on Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tuner.report.runs import write_run
from tuner.cli import main
from tuner.report.watch import watch


def set_status(run_dir: Path, status: str) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"] = status
    (run_dir / "run.json").write_text(json.dumps(meta))


def test_the_page_is_rewritten_and_reloads_until_the_run_is_done(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [], status="running")
    said: list[str] = []
    pages: list[str] = []
    page = run_dir / "report" / "index.html"

    def sleep(seconds: float) -> None:
        assert seconds == 3
        pages.append(page.read_text())
        if len(pages) == 2:
            set_status(run_dir, "done")

    assert watch(run_dir, None, 3, say=said.append, sleep=sleep) == page
    assert len(pages) == 2 and all('<meta http-equiv="refresh" content="3">' in p for p in pages)
    assert 'http-equiv="refresh"' not in page.read_text()  # the last page stays still
    assert said == [f"report: {page} (the run is going: rewritten every 3 s; Ctrl-C stops)"] * 2 + [
        f"report: {page} (the run is done)"
    ]


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_a_run_that_ended_is_written_once(tmp_path: Path, status: str) -> None:
    run_dir = write_run(tmp_path, [], status=status)
    said: list[str] = []
    watch(run_dir, tmp_path / "out", 5, say=said.append, sleep=lambda s: pytest.fail("slept"))
    assert said == [f"report: {tmp_path / 'out' / 'index.html'} (the run is {status})"]


def test_ctrl_c_stops_the_watch_with_the_page_whole(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [], status="running")
    said: list[str] = []

    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    page = watch(run_dir, None, 1, say=said.append, sleep=sleep)
    assert said[-1] == "stopped" and page.is_file() and "</html>" in page.read_text()


def test_the_command_line_takes_watch_with_or_without_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_run(tmp_path, [])
    assert main(["report", str(run_dir), "--watch"]) == 0
    assert capsys.readouterr().out.strip().endswith("(the run is done)")
    assert main(["report", str(run_dir), "--watch", "2", "-o", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "index.html").is_file()
    assert main(["report", str(run_dir), "--watch", "0"]) == 2
    assert capsys.readouterr().err.strip() == "tuner report: argument --watch: 0 must be >= 1 (see tuner report --help)"
    assert main(["report", str(tmp_path / "nope"), "--watch"]) == 2  # bad input: one line, exit 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nope'}: no such run directory"


@pytest.mark.parametrize("state", ["gone", "unknown"])
def test_a_running_run_whose_driver_is_gone_ends_the_watch(
    tmp_path: Path, state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.json says running, but no process holds the run's lock (its driver was killed): the
    page is written a last time, still, and the watch ends saying to resume. A lock this
    machine cannot judge ("unknown": an older run, another machine) keeps the watch going."""
    import tuner.report.watch as watch_mod

    run_dir = write_run(tmp_path, [], status="running")
    monkeypatch.setattr(watch_mod, "driver_state", lambda d: state)
    said: list[str] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        raise KeyboardInterrupt

    page = watch(run_dir, None, 2, say=said.append, sleep=sleep)
    if state == "gone":
        assert slept == [] and 'http-equiv="refresh"' not in page.read_text()
        assert said == [
            f"report: {page} (run.json says the run is going)",
            f"the run's driver is not running (it was killed?): continue it with tuner resume {run_dir}",
        ]
    else:
        assert slept == [2] and said[-1] == "stopped"


def test_the_watch_prints_a_path_with_control_characters_escaped(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [])
    said: list[str] = []
    out = tmp_path / "a\nb\x1b[31m"
    watch(run_dir, out, 1, say=said.append)
    assert said == [f"report: {tmp_path}/a\\nb\\x1b[31m/index.html (the run is done)"]


def test_a_lock_no_process_holds_is_a_driver_gone(tmp_path: Path) -> None:
    """The same with the run directory's real lock file (:mod:`tuner.lock`), that a killed
    driver leaves behind unheld."""
    import socket

    from tuner.lock import LOCK_FILE

    run_dir = write_run(tmp_path, [], status="running")
    (run_dir / LOCK_FILE).write_text(f"pid 999999 on {socket.gethostname()}\n")
    said: list[str] = []
    watch(run_dir, None, 1, say=said.append, sleep=lambda s: pytest.fail("slept"))
    assert said[-1] == f"the run's driver is not running (it was killed?): continue it with tuner resume {run_dir}"


def test_a_reader_gone_ends_the_watch_after_its_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tuner report RUN --watch | head -1` rewrote the page forever into a pipe nobody read."""
    import sys

    from tests.tuner.test_streams import gone_reader

    run_dir = write_run(tmp_path, [], status="running")
    gone = gone_reader()
    monkeypatch.setattr(sys, "stdout", gone)
    page = watch(run_dir, None, 1, say=lambda line: None, sleep=lambda s: pytest.fail("slept"))
    assert page.is_file() and 'http-equiv="refresh"' in page.read_text()  # the run still goes on
