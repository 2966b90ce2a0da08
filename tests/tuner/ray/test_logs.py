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
