"""The driver's callbacks: how an experiment ended, and what is pickled into its state."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle

from tuner.ray.callbacks import Outcome, ProgressCallback
from tuner.ray.experiment import _raise_if_interrupted


def test_an_experiment_ended_by_ctrl_c_is_told_from_a_finished_one() -> None:
    def trials(*statuses: str) -> list[Any]:
        return [SimpleNamespace(trial_id=f"t{i}", status=s) for i, s in enumerate(statuses)]

    finished = Outcome()
    done = trials("TERMINATED", "ERROR")
    for t in done:
        finished.on_trial_start(1, done, t)
    finished.on_trial_complete(2, done, done[0])
    finished.on_trial_error(2, done, done[1])
    finished.on_experiment_end(done)
    assert finished.unfinished == 0
    # Ctrl-C: Tune's cleanup marks the running trials TERMINATED without telling the callbacks
    interrupted = Outcome()
    end = trials("TERMINATED", "TERMINATED", "PENDING")
    for t in end[:2]:
        interrupted.on_trial_start(1, end, t)
    interrupted.on_trial_complete(2, end, end[1])
    interrupted.on_experiment_end(end)
    assert interrupted.unfinished == 2  # one still running, one never started
    with pytest.raises(KeyboardInterrupt):
        _raise_if_interrupted(interrupted)
    _raise_if_interrupted(finished)


def test_the_progress_printer_is_not_pickled_into_the_experiment() -> None:
    lines: list[str] = []
    cb = ProgressCallback(lambda events: lines.append("x"), 0.0)
    copy = cloudpickle.loads(cloudpickle.dumps(cb))
    assert copy.on_step is None and cb.on_step is not None
    copy.on_experiment_end([])  # without a printer: silent
