"""ASHA's rung records survive a restore (Ray 2.60 does not save a scheduler's state)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle

from tuner.ray.asha import ResumableASHA, SchedulerState, scheduler
from tuner.spec import SchedulerSpec


def asha() -> ResumableASHA:
    s = scheduler(SchedulerSpec("asha", grace_period=1, reduction_factor=2, brackets=1, max_t=8))
    assert isinstance(s, ResumableASHA)
    s.set_search_properties("val_acc", "max")
    return s


def trial(i: int) -> Any:
    return SimpleNamespace(trial_id=f"t{i}")


def feed(s: ResumableASHA, results: list[tuple[int, int, float]]) -> list[str]:
    """(trial, epoch, val_acc) results in order; returns ASHA's decisions."""
    return [s.on_trial_result(None, trial(i), {"training_iteration": e, "val_acc": acc}) for i, e, acc in results]


def test_asha_rung_records_survive_a_restore() -> None:
    first = asha()
    for i in range(4):
        first.on_trial_add(None, trial(i))
    feed(first, [(0, 1, 0.9), (1, 1, 0.2), (2, 1, 0.8), (0, 2, 0.95)])
    state = first.rungs_state()
    assert {r["milestone"]: r["recorded"] for r in state["brackets"][0]}[1.0] == {"t0": 0.9, "t1": 0.2, "t2": 0.8}
    assert state["trial_bracket"] == {f"t{i}": 0 for i in range(4)}
    # a fresh scheduler (what Tune unpickles on restore) knows nothing; given the state, it
    # decides the next results exactly as the first one does
    fresh, restored = asha(), asha()
    restored.set_rungs_state(state)
    for s in (fresh, restored):
        s.on_trial_add(None, trial(3))
    assert restored.rungs_state()["brackets"] == state["brackets"]
    later = [(3, 1, 0.3)]  # below the rung's median (0.8)
    assert feed(restored, later) == feed(first, later) == ["STOP"]
    assert feed(fresh, later) == ["CONTINUE"]  # without its records ASHA stops nothing


def test_asha_state_of_another_sweep_is_refused() -> None:
    state = asha().rungs_state()
    other = scheduler(SchedulerSpec("asha", grace_period=3, reduction_factor=3, brackets=1, max_t=9))
    with pytest.raises(ValueError, match="does not match the saved rung"):
        other.set_rungs_state(state)


def test_the_state_callback_and_the_tuner_share_one_scheduler_after_unpickling() -> None:
    s = asha()
    s.on_trial_add(None, trial(0))
    feed(s, [(0, 1, 0.5)])
    callback = SchedulerState(s)
    # Tune pickles its tune_config (the scheduler) and run_config (the callbacks) in one piece
    scheduler2, callback2 = cloudpickle.loads(cloudpickle.dumps((s, callback)))
    assert callback2.scheduler is scheduler2
    saved = callback2.get_state()
    assert saved == {"asha": s.rungs_state()}
    empty = asha()
    SchedulerState(empty).set_state(saved)
    assert empty.rungs_state()["brackets"] == s.rungs_state()["brackets"]
    assert scheduler(SchedulerSpec("none", 1, 2, 1, 8)).__class__.__name__ == "FIFOScheduler"
