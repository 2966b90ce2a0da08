"""ASHA keeps the better part of each rung, and its rung records survive a restore (Ray 2.60
does not save a scheduler's state).

:func:`check_decisions` proves, from a finished round's ``asha-rungs.json`` and its trials'
results, that every decision ASHA took was the right one; the end-to-end tests of the runner
and the command line use it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import ray.cloudpickle as cloudpickle
from hypothesis import given, settings
from hypothesis import strategies as st

from tuner.ray.asha import ResumableASHA, SchedulerState, scheduler
from tuner.records import RUNGS_FILE, TrialRecord, TrialStatus, sign
from tuner.spec import SchedulerSpec


def asha(metric: str = "val_acc", mode: str = "max", reduction_factor: float = 2) -> ResumableASHA:
    s = scheduler(SchedulerSpec("asha", grace_period=1, reduction_factor=reduction_factor, brackets=1, max_t=8))
    assert isinstance(s, ResumableASHA)
    s.set_search_properties(metric, mode)
    return s


def trial(i: int) -> Any:
    return SimpleNamespace(trial_id=f"t{i}")


def feed(s: ResumableASHA, results: list[tuple[int, int, float]], metric: str = "val_acc") -> list[str]:
    """(trial, epoch, value) results in order; returns ASHA's decisions."""
    return [s.on_trial_result(None, trial(i), {"training_iteration": e, metric: v}) for i, e, v in results]


def cutoff(before: Sequence[float], reduction_factor: float) -> float | None:
    """The value a trial must reach at a rung to go on: the (1 - 1/η) quantile of the values
    recorded there before it (ASHA's own values: larger is better); None for an empty rung."""
    return float(np.nanpercentile(list(before), (1 - 1 / reduction_factor) * 100)) if before else None


def rungs_file(run_dir: Path) -> Path:
    """The run's ``asha-rungs.json`` (beside Ray Tune's experiment state)."""
    (path,) = run_dir.glob(f"*/{RUNGS_FILE}")
    return path


def check_decisions(rungs: Path, trials: Sequence[TrialRecord], metric: str, mode: str, reduction_factor: float) -> int:
    """Check every decision of a one-bracket ASHA over ``trials`` (every trial it judged) from
    its rung records ``rungs`` (``asha-rungs.json``); returns how many STOPs it checked.

    ``asha-rungs.json`` holds each rung's records in the order ASHA made them (a dict keeps
    its insertion order through the JSON file, and through a restore), so the records before a
    trial's are exactly what ASHA compared it with when it reached the rung, however the trials
    interleaved. At each rung, for each trial recorded there:

    - its recorded value is the sweep's metric at that epoch times +1 (max) or -1 (min): ASHA
      judged the metric the sweep names, in the sweep's direction;
    - it was stopped there (its last epoch) exactly when that value lay below the cutoff of
      the values recorded before it -- the worse part stops, the better part goes on;
    - every trial that reached the rung's epoch is recorded there.

    A non-finite value is ``null`` in the file (strict JSON): only a diverged trial's worst
    value, which in ASHA's larger-is-better terms is -inf.
    """
    state = json.loads(rungs.read_text())
    (bracket,) = state["brackets"]
    by_id = {t.trial_id: t for t in trials if t.status != TrialStatus.ERROR}
    max_t = max(t.epochs for t in by_id.values())
    stops = 0
    for rung in bracket:
        epoch = math.ceil(rung["milestone"])  # ASHA judges a trial at its first report at or past the milestone
        recorded = rung["recorded"]
        assert set(recorded) == {i for i, t in by_id.items() if t.epochs >= epoch}, epoch
        before: list[float] = []
        for trial_id, saved in recorded.items():
            t = by_id[trial_id]
            value = -math.inf if saved is None else float(saved)
            reported = t.score_at(metric, epoch)
            assert reported is not None, (trial_id, epoch)
            assert value == pytest.approx(sign(mode) * reported, rel=1e-9), (trial_id, epoch)
            limit = cutoff(before, reduction_factor)
            if limit is not None and value < limit:  # ASHA said STOP: the trial ends at this rung
                assert t.epochs == epoch, (trial_id, epoch, value, limit)
                assert t.status == (TrialStatus.FINISHED if epoch >= max_t else TrialStatus.STOPPED)
                stops += 1
            else:  # CONTINUE: the trial trains on, unless its budget ends here
                assert t.epochs > epoch or t.status == TrialStatus.FINISHED, (trial_id, epoch, value, limit)
            before.append(value)
    stopped = {t.trial_id for t in by_id.values() if t.status == TrialStatus.STOPPED}
    assert stops >= len(stopped)  # every stopped trial was stopped by a decision checked above
    return stops


@pytest.mark.parametrize(
    "metric, mode, expected",
    [
        # at rung 1 each trial meets the median of those before it: the worse half stops
        ("val_acc", "max", ["CONTINUE", "CONTINUE", "STOP", "CONTINUE", "CONTINUE", "STOP"]),
        # the same numbers as losses: now the larger ones are the worse
        ("val_loss", "min", ["CONTINUE", "STOP", "CONTINUE", "STOP", "STOP", "CONTINUE"]),
    ],
)
def test_asha_stops_the_worse_half_in_the_metrics_direction(metric: str, mode: str, expected: list[str]) -> None:
    s = asha(metric, mode)
    values = [0.5, 0.9, 0.2, 0.7, 0.8, 0.1]
    for i in range(len(values)):
        s.on_trial_add(None, trial(i))
    assert feed(s, [(i, 1, v) for i, v in enumerate(values)], metric) == expected
    rung1 = {r["milestone"]: r["recorded"] for r in s.rungs_state()["brackets"][0]}[1.0]
    assert list(rung1.values()) == [sign(mode) * v for v in values]  # ASHA's own values, in its order
    for i, v in enumerate(values):  # the oracle the end-to-end checks use says the same
        limit = cutoff(list(rung1.values())[:i], 2)
        assert (limit is not None and sign(mode) * v < limit) == (expected[i] == "STOP")
    # at rung 2 the survivors meet only each other: best first, every later one is worse
    going_on = sorted((i for i, d in enumerate(expected) if d == "CONTINUE"), key=lambda i: -sign(mode) * values[i])
    assert feed(s, [(i, 2, values[i]) for i in going_on], metric) == ["CONTINUE"] + ["STOP"] * (len(going_on) - 1)


def test_a_reduction_factor_of_3_keeps_the_best_third() -> None:
    s = asha(reduction_factor=3)
    values = [0.3, 0.6, 0.5, 0.55, 0.9, 0.58]
    for i in range(len(values)):
        s.on_trial_add(None, trial(i))
    # cutoffs (2/3 quantile of those before): none, 0.3, 0.5, 0.533, 0.567, 0.6
    assert feed(s, [(i, 1, v) for i, v in enumerate(values)]) == [
        "CONTINUE",
        "CONTINUE",
        "CONTINUE",
        "CONTINUE",
        "CONTINUE",
        "STOP",
    ]


def test_diverged_trials_at_a_rung_cut_quietly_as_rays_would() -> None:
    """A diverged trial is recorded as -inf (val_loss, min: worst is +inf). Ray's quantile
    between -inf and a finite value warned on the console (numpy's "invalid value") and was
    NaN; the cutoff is -inf, and the decisions are Ray's."""
    s = asha(metric="val_loss", mode="min", reduction_factor=3)
    values = [math.inf, math.inf, 0.3, 0.9, 0.2, 0.95]
    for i in range(len(values)):
        s.on_trial_add(None, trial(i))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decisions = feed(s, [(i, 1, v) for i, v in enumerate(values)], "val_loss")
    # cutoffs (2/3 quantile of those before): none, -inf, -inf, -inf (Ray's: NaN), -0.9, -0.5
    assert decisions == ["CONTINUE", "CONTINUE", "CONTINUE", "CONTINUE", "CONTINUE", "STOP"]
    (bracket,) = s._brackets
    assert bracket.cutoff({"a": -math.inf, "b": -math.inf, "c": -0.3}) == -math.inf
    assert bracket.cutoff({"a": -0.9, "b": -0.3}) == pytest.approx(-0.5, abs=1e-3)


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


def test_a_rung_state_saved_before_brackets_were_recorded_still_restores() -> None:
    """A state file of an earlier version (no ``trial_bracket``): the rung records come back and
    every trial goes to the one bracket."""
    first = asha()
    first.on_trial_add(None, trial(0))
    feed(first, [(0, 1, 0.9)])
    state = {"brackets": first.rungs_state()["brackets"]}
    restored = asha()
    restored.set_rungs_state(state)
    restored.on_trial_add(None, trial(1))
    assert feed(restored, [(1, 1, 0.1)]) == ["STOP"]  # below the restored record


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
    assert scheduler(SchedulerSpec("none", 1, 2, 1, 8)).__class__.__name__ == "FlatFIFO"


def test_the_scheduler_is_built_from_every_field_of_the_spec() -> None:
    spec = SchedulerSpec("asha", grace_period=2, reduction_factor=3, brackets=2, max_t=18)
    s = scheduler(spec)
    s.set_search_properties("val_acc", "max")
    rungs = [[r["milestone"] for r in b] for b in s.rungs_state()["brackets"]]
    assert rungs == [[18.0, 6.0, 2.0], [18.0, 6.0]]  # bracket s starts at grace · η^s
    assert sorted({math.ceil(m) for b in rungs for m in b}) == spec.milestones()  # the batching's epochs
    # its time unit is the reported epoch (one report an epoch): judged at epoch 6, not before
    s.on_trial_add(None, trial(0))
    s._trial_info["t0"] = s._brackets[0]
    assert feed(s, [(0, 2, 0.9), (0, 5, 0.9)]) == ["CONTINUE", "CONTINUE"]
    assert s.rungs_state()["brackets"][0][1]["recorded"] == {}


def test_a_restored_trial_goes_back_to_its_bracket() -> None:
    """Ray's ASHA puts a new trial in a bracket at random; a restored one must stay in the
    bracket whose rungs hold its records (an index that no longer exists is ignored)."""
    spec = SchedulerSpec("asha", grace_period=1, reduction_factor=2, brackets=2, max_t=8)
    first = scheduler(spec)
    first.set_search_properties("val_acc", "max")
    for i in range(20):
        first.on_trial_add(None, trial(i))
    state = first.rungs_state()
    assert set(state["trial_bracket"].values()) == {0, 1}  # 20 random draws fill both
    state["trial_bracket"]["t20"] = 2  # a bracket this scheduler does not have (one past the last)
    restored = scheduler(spec)
    restored.set_search_properties("val_acc", "max")
    restored.set_rungs_state(json.loads(json.dumps(state)))  # as asha-rungs.json / the snapshot holds it
    for i in range(21):
        restored.on_trial_add(None, trial(i))
    assert {k: v for k, v in restored.rungs_state()["trial_bracket"].items() if k != "t20"} == first.rungs_state()[
        "trial_bracket"
    ]
    assert restored._trial_info["t20"] in restored._brackets


def test_the_state_callback_writes_the_rung_records_beside_the_experiment(tmp_path: Path) -> None:
    s = asha()
    s.on_trial_add(None, trial(0))
    feed(s, [(0, 1, 0.5)])
    callback = SchedulerState(s)
    assert callback.get_state() == {"asha": s.rungs_state()} and not list(tmp_path.iterdir())  # no folder yet
    staging = SimpleNamespace(storage=SimpleNamespace(experiment_driver_staging_path=str(tmp_path)))
    callback.on_trial_result(1, [], staging, {})
    callback.get_state()
    assert json.loads((tmp_path / RUNGS_FILE).read_text()) == s.rungs_state()


class _Trial(SimpleNamespace):
    __hash__ = object.__hash__  # Tune's trials are hashable by identity


class _Controller:
    """What a scheduler sees of Tune's controller: its live trials; its whole list of trials
    may not be walked (nor read: the choice must not depend on the number of trials)."""

    def __init__(self, trials: Sequence[Any]) -> None:
        self.live = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]  # Tune's is a set

    def get_live_trials(self) -> list[Any]:
        return self.live

    def get_trials(self) -> Any:
        raise AssertionError("a pass over every trial of the experiment")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["PENDING", "RUNNING", "PAUSED", "TERMINATED", "ERROR"]), max_size=30),
    st.lists(st.integers(0, 29), max_size=3),
)
def test_the_next_trial_to_run_is_rays_choice_found_among_the_live_trials(
    statuses: list[str], retried: list[int]
) -> None:
    from ray.tune.schedulers import FIFOScheduler

    for made in (scheduler(SchedulerSpec("none", 1, 3, 1, 1)), scheduler(SchedulerSpec("asha", 1, 3, 1, 20))):
        made.set_search_properties("val_acc", "max")
        trials = [_Trial(trial_id=f"t{i:03d}", status=s) for i, s in enumerate(statuses)]
        for t in trials:
            made.on_trial_add(None, t)
        for i in retried:  # a failed trial retried: Tune moves it to the end of its list and adds it again
            if i < len(trials):
                trials.append(trials.pop(i))
                trials[-1].status = "PENDING"
                made.on_trial_add(None, trials[-1])
        expected = FIFOScheduler().choose_trial_to_run(SimpleNamespace(get_trials=lambda t=trials: t))
        assert made.choose_trial_to_run(_Controller(trials)) is expected


def test_the_next_trial_is_chosen_without_reading_every_trial_and_the_order_is_not_pickled() -> None:
    made = scheduler(SchedulerSpec("asha", 1, 3, 1, 20))
    made.set_search_properties("val_acc", "max")
    trials = [_Trial(trial_id=f"t{i}", status="TERMINATED") for i in range(10_000)]
    trials += [_Trial(trial_id="new1", status="PENDING"), _Trial(trial_id="new2", status="PENDING")]
    for t in trials:
        made.on_trial_add(None, t)
    assert made.choose_trial_to_run(_Controller(trials)).trial_id == "new1"
    assert cloudpickle.loads(cloudpickle.dumps(made))._place == {}  # a resume adds every trial again
