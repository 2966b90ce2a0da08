"""The startup benchmark's measure of when trials ran (the share of a run with no trial running)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.startup import busy_union, trial_intervals


def _trial(run_dir: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    trial_dir = run_dir / "trials" / name
    trial_dir.mkdir(parents=True)
    (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return trial_dir


def _events(trial_dir: Path, times: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial's TensorBoard file as the driver writes it: one scalar a result at ``times``."""
    from tuner.ray import callbacks

    clock = iter([times[0], times[0], *times, times[-1] + 5.0])  # its name and header, the results, hparams
    monkeypatch.setattr(callbacks.time, "time", lambda: next(clock))
    writer = callbacks.TrialEvents(str(trial_dir))
    for step, _ in enumerate(times, start=1):
        writer.add_scalar("ray/tune/val_acc", 0.5, global_step=step)
    from tensorboardX.summary import scalar

    writer.add_summary(scalar("hparams", 1.0))  # a step-less record at the end: not a result
    writer.close()


def test_a_trial_runs_from_its_first_step_to_its_last_result_to_the_microsecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"timestamp": 1000, "time_this_iter_s": 0.75, "time_total_s": 0.75},
        {"timestamp": 1001, "time_this_iter_s": 0.5, "time_total_s": 1.25},
    ]
    _events(_trial(tmp_path, "a", rows), [1000.9, 1001.4], monkeypatch)
    ((start, end),) = trial_intervals(tmp_path)
    assert start == pytest.approx(1000.15)
    assert end == pytest.approx(1001.4)


def test_without_event_files_the_spans_come_from_whole_second_timestamps(tmp_path: Path) -> None:
    _trial(tmp_path, "a", [{"timestamp": 1000, "time_this_iter_s": 0.75}, {"timestamp": 1002}])
    _trial(tmp_path, "empty", [])
    assert trial_intervals(tmp_path) == [(999.25, 1002.0)]


def test_busy_time_is_the_union_of_the_spans_within_the_window() -> None:
    spans = [(1.0, 3.0), (2.0, 4.0), (6.0, 7.0), (-1.0, 0.5), (9.0, 12.0)]
    assert busy_union(spans, 0.0, 10.0) == pytest.approx(0.5 + 3.0 + 1.0 + 1.0)
    assert busy_union([], 0.0, 10.0) == 0.0
