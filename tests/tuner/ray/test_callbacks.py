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


class _Trial:
    """A Tune trial whose ``last_result`` (rebuilt by Tune at each access) counts its reads."""

    def __init__(self, i: int, status: str) -> None:
        self.trial_id, self.status, self.config, self.reads = f"t{i}", status, {"x": i}, 0

    @property
    def last_result(self) -> dict[str, Any]:
        self.reads += 1
        return {"epoch": 3, "val_acc": 0.5}


def test_the_progress_takes_an_ended_trials_state_once() -> None:
    seen: list[list[Any]] = []
    cb = ProgressCallback(seen.append, 0.0)
    trials = [_Trial(0, "TERMINATED"), _Trial(1, "ERROR"), _Trial(2, "RUNNING"), _Trial(3, "PENDING")]
    for step in range(3):
        cb.on_step_end(step, trials)
    assert [t.reads for t in trials] == [1, 1, 3, 3]
    assert [[(e.trial_id, e.status, e.epochs()) for e in events] for events in seen] == 3 * [
        [("t0", "TERMINATED", 3), ("t1", "ERROR", 3), ("t2", "RUNNING", 3), ("t3", "PENDING", 3)]
    ]
    trials[2].status = "TERMINATED"  # it ends: its final state is the one kept
    cb.on_step_end(3, trials)
    cb.on_step_end(4, trials)
    assert trials[2].reads == 4 and seen[-1][2].status == "TERMINATED"
    assert cloudpickle.loads(cloudpickle.dumps(cb))._ended == {}  # not part of the experiment's state
