"""Ray's log records on the driver's console: one line, the traceback in a file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from tuner.ray import logs


def record(message: str, exc: bool = False, name: str = "ray.tune.execution.tune_controller") -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("my bug")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(name, logging.ERROR, "tune_controller.py", 1336, message, None, exc_info)


def test_what_tuner_says_itself_stays_off_the_console_and_other_tracebacks_shrink_to_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNER_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(logs, "_FILTER", logs._Filter())
    f = logs._FILTER
    assert f.filter(record("a plain warning")) and f.path is None  # shown as it is, nothing logged
    assert not f.filter(record("Trial task failed for trial run_trial_1", exc=True))
    assert not f.filter(record("Trials did not complete: [run_trial_1]"))
    assert not f.filter(record("Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): boom\nTraceback"))
    restore = "Experiment has been interrupted, but the most recent state was saved.\nResume experiment with: Tuner.restore(path=x)"
    assert not f.filter(record(restore))  # tuner says `tuner resume RUN` instead
    stop = (
        "Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run. This will try to checkpoint the "
        "experiment state one last time. Press CTRL+C (or send SIGINT/SIGKILL/SIGTERM) to skip."
    )
    assert not f.filter(record(stop, name="ray.tune.tune"))  # tuner says "interrupted" and how to resume
    default_excludes = (
        "Directory '.git' is now ignored by default when packaging the working directory. To disable this "
        "behavior, set the `RAY_OVERRIDE_RUNTIME_ENV_DEFAULT_EXCLUDES=''` environment variable."
    )
    assert not f.filter(record(default_excludes, name="ray._private.runtime_env.working_dir"))
    other = record("Something else broke", exc=True)
    assert f.filter(other)
    assert other.getMessage() == f"Something else broke (the rest: {f.path})" and other.exc_info is None
    assert f.path is not None and f.path.parent == tmp_path
    text = f.path.read_text()
    assert text.count("Traceback (most recent call last)") == 2 and "ValueError: my bug" in text
    assert (
        "Trial task failed for trial run_trial_1" in text
        and "Trials did not complete" in text
        and "Tuner.restore" in text
    )


def test_install_filters_the_handlers_of_rays_loggers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = logging.NullHandler()
    logger = logging.getLogger("ray.tune.some_module_of_tests")
    logger.addHandler(handler)
    try:
        logs.install()
        logs.install()
        assert handler.filters.count(logs._FILTER) == 1
    finally:
        logger.removeHandler(handler)


RAYLET_DEATH = (
    "\x1b[33mRaylet is terminated. Termination is unexpected. Possible reasons include: (1) SIGKILL by the user "
    "or system OOM killer ... Last 20 lines of the Raylet logs:\n"
    + "\n".join(f"    [state-dump] line {i}" for i in range(20))
    + "\x1b[0m"
)
WORKER_DEATH = "A worker died or was killed while executing a task by an unexpected system error. Worker PID: 10272"


def test_rays_messages_of_its_own_processes_go_to_the_log_with_one_console_line_an_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The raylet's messages come through Ray's driver printing (``print_to_stdstream``), not
    logging: a lost node's 20-line state dump and a dead worker's message are one line each in
    tuner's words, the messages themselves in the log file; a worker's own output is printed
    as Ray prints it."""
    monkeypatch.setenv("TUNER_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(logs, "_FILTER", logs._Filter())
    printed: list[dict[str, object]] = []
    streams = logs._Streams(lambda data, ignore_prefix: printed.append(data))
    streams({"lines": [RAYLET_DEATH], "pid": "raylet", "is_err": False})
    marked = (
        "The node with node id: cd3bb865 and address: 192.0.2.2 has been marked dead because the detector has missed"
    )
    streams({"lines": [marked], "pid": "gcs_server", "is_err": False})  # the same node lost: said once
    streams({"lines": [WORKER_DEATH], "pid": "raylet", "is_err": False})
    streams({"lines": [WORKER_DEATH.replace("10272", "10273")], "pid": "raylet", "is_err": False})  # the same again
    streams({"lines": ["Something else of Ray's", "and its details"], "pid": "gcs_server", "is_err": True})
    worker_output = {"lines": ["epoch 1"], "pid": 4242, "is_err": False}
    streams(worker_output)
    path = logs._FILTER.path
    assert path is not None and path.parent == tmp_path
    assert capsys.readouterr().err.splitlines() == [
        f"a worker node was lost: its trials restart from their checkpoints (Ray's message: {path})",
        f"a trial's process died (Ray's message: {path})",
        f"Something else of Ray's (Ray's message: {path})",
    ]
    text = path.read_text()
    assert (
        "[state-dump] line 19" in text and "marked dead" in text and "Worker PID: 10273" in text and "\x1b" not in text
    )
    assert printed == [worker_output]


def test_install_puts_tuner_in_the_way_of_rays_driver_printing_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import worker as ray_worker

    def original(data: dict[str, object], ignore_prefix: bool) -> None:
        pass

    monkeypatch.setattr(ray_worker, "print_to_stdstream", original)
    logs.install()
    logs.install()
    assert isinstance(ray_worker.print_to_stdstream, logs._Streams)
    assert ray_worker.print_to_stdstream.ray_print is original


def test_a_line_ray_repeats_is_shown_once_a_minute_and_kept_whole_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk makes Ray's syncer warn every half second, each with a traceback: the
    console gets its first line once (the log file every one), and a record seen by two
    handlers is judged once."""
    monkeypatch.setenv("TUNER_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(logs, "_FILTER", logs._Filter())
    f = logs._FILTER
    sync = "Last sync command failed with the following error:\nTraceback (most recent call last):\nOSError: 28"
    first = record(sync, name="ray.train._internal.syncer")
    assert f.filter(first) and f.filter(first)  # a second handler of the same record: the same verdict
    assert first.getMessage().startswith("Last sync command failed with the following error: (the rest: ")
    for _ in range(5):
        assert not f.filter(record(sync, name="ray.train._internal.syncer"))
    assert f.path is not None and f.path.read_text().count("Last sync command failed") == 6
    assert f.filter(record("a plain warning")) and not f.filter(record("a plain warning"))
    assert f.filter(record("another warning"))
    monkeypatch.setattr(logs, "_SAID_S", 0.0)  # a minute later: shown again
    assert f.filter(record(sync, name="ray.train._internal.syncer"))


def test_a_trial_stopped_as_hung_is_said_so_not_that_its_process_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """tuner ends a hung trial's process on purpose (trial_timeout): Ray's message of the dead
    worker guesses at memory; the console line names the trial and why, from its folder."""
    monkeypatch.setenv("TUNER_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(logs, "_FILTER", logs._Filter())
    monkeypatch.setattr(logs, "_TRIALS", {})
    hung, other, stale = tmp_path / "hung", tmp_path / "other", tmp_path / "stale"
    for d in (hung, other, stale):
        d.mkdir()
    (stale / "timed-out.txt").write_text(
        "no report within 5 s (trial_timeout): stopped as hung\n"
    )  # an earlier start's
    for trial_id, folder in (("aaaa0001", stale), ("aaaa0002", other), ("aaaa0003", hung)):
        logs.trial_started(trial_id, folder)
    streams = logs._Streams(lambda data, ignore_prefix: None)
    (hung / "timed-out.txt").write_text("no report within 8 s (trial_timeout): stopped as hung\n")
    streams({"lines": [WORKER_DEATH], "pid": "raylet", "is_err": False})
    streams({"lines": [WORKER_DEATH.replace("10272", "10273")], "pid": "raylet", "is_err": False})  # another death
    path = logs._FILTER.path
    assert capsys.readouterr().err.splitlines() == [
        "trial aaaa0003: no report within 8 s (trial_timeout): stopped as hung",
        f"a trial's process died (Ray's message: {path})",
    ]
