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
    finished.on_step_end(1, trials("TERMINATED", "ERROR"))
    finished.on_experiment_end(trials("TERMINATED", "ERROR"))
    assert finished.unfinished == 0
    interrupted = Outcome()
    interrupted.on_step_end(1, trials("RUNNING", "TERMINATED", "PENDING"))
    interrupted.on_experiment_end(trials("TERMINATED", "TERMINATED", "PENDING"))  # after Tune's cleanup
    assert interrupted.unfinished == 2
    with pytest.raises(KeyboardInterrupt):
        _raise_if_interrupted(interrupted)
    _raise_if_interrupted(finished)


def test_the_progress_printer_is_not_pickled_into_the_experiment() -> None:
    lines: list[str] = []
    cb = ProgressCallback(lambda events: lines.append("x"), 0.0)
    copy = cloudpickle.loads(cloudpickle.dumps(cb))
    assert copy.on_step is None and cb.on_step is not None
    copy.on_experiment_end([])  # without a printer: silent
