"""The experiment's settings that keep the driver's cost per trial flat."""

from __future__ import annotations

from typing import Any

import pytest
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

from tuner.ray.experiment import SNAPSHOT_FLOOR_S, snapshot_floor


def test_snapshots_come_every_half_second_while_cheap_and_never_cost_more_than_a_twentieth() -> None:
    snapshot_floor()
    manager = _ExperimentCheckpointManager(storage=None, checkpoint_period="auto")
    manager._update_auto_checkpoint_time(0.001)  # a small sweep: fresh state for `tuner resume`
    assert manager._checkpoint_period == SNAPSHOT_FLOOR_S == 0.5
    manager._update_auto_checkpoint_time(0.2)  # 10,000 trials: 0.2 s a snapshot, at most 5% of the time
    assert manager._checkpoint_period == 0.2 * 19
    fixed = _ExperimentCheckpointManager(storage=None, checkpoint_period=3.0)
    fixed._update_auto_checkpoint_time(1.0)  # a user's own fixed period is left alone
    assert fixed._checkpoint_period == 3.0
    snapshot_floor()  # idempotent
    assert _ExperimentCheckpointManager._tuner_floor_s == 0.5


def settings(cpu: float = 1.0, gpu: float = 0.0, num_samples: int = 100, max_concurrent: int = 0) -> Any:
    from tuner.ray.experiment import ExperimentSettings
    from tuner.ray.search import RoundSearcher
    from tuner.space import Parameter
    from tuner.spec import SchedulerSpec

    searcher = RoundSearcher([Parameter("x", "uniform", 0.0, 1.0)], "random", [num_samples], 0, "m", "max")
    searcher.max_concurrent = max_concurrent
    return ExperimentSettings(
        storage="/nowhere",
        name="trials",
        trial_args={},
        searcher=searcher,
        num_samples=num_samples,
        metric="m",
        mode="max",
        scheduler=SchedulerSpec("none", 1, 3, 1, 1),
        cpu=cpu,
        gpu=gpu,
        max_failures=0,
    )


@pytest.mark.parametrize(
    "resources, kwargs, expected",
    [
        ({"CPU": 16.0}, {}, 16),  # Ray's own rule for a custom searcher: 1
        ({"CPU": 16.0}, {"cpu": 2.0}, 8),
        ({"CPU": 16.0, "GPU": 2.0}, {"cpu": 1.0, "gpu": 0.25}, 8),  # the GPUs bind first
        ({"CPU": 16.0}, {"max_concurrent": 3}, 3),
        ({"CPU": 16.0}, {"num_samples": 5}, 5),
        ({"CPU": 1.0}, {"cpu": 4.0}, 1),  # never 0 (a trial that cannot fit is said elsewhere)
    ],
)
def test_tune_creates_as_many_trials_ahead_as_fit_at_once(
    monkeypatch: pytest.MonkeyPatch, resources: dict[str, float], kwargs: dict[str, Any], expected: int
) -> None:
    import os

    import ray

    from tuner.ray import experiment

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    monkeypatch.delenv("TUNE_MAX_PENDING_TRIALS_PG", raising=False)
    s = settings(**kwargs)
    assert experiment.max_pending(s) == expected
    with experiment.pending_trials(s):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == str(expected)
    assert "TUNE_MAX_PENDING_TRIALS_PG" not in os.environ
    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "1")  # the user's own value wins
    with experiment.pending_trials(s):
        assert os.environ["TUNE_MAX_PENDING_TRIALS_PG"] == "1"


def test_the_trainable_is_looked_up_once_a_name_within_an_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune asks the GCS for a trial's trainable several times a trial; within the block the
    driver asks once a name, an unknown name still fails as Tune's own check does, and the
    lookups are Tune's own again after it."""
    from ray.tune.experiment import trial as trial_module

    from tuner.ray.experiment import trainable_lookups_cached

    asked: list[str] = []

    def get(name: str) -> object:
        asked.append(name)
        return object()

    def validate(name: str) -> None:
        asked.append(f"validate {name}")
        if name == "unknown":
            raise ValueError("Unknown trainable: unknown")

    monkeypatch.setattr(trial_module, "get_trainable_cls", get)
    monkeypatch.setattr(trial_module, "validate_trainable", validate)
    with trainable_lookups_cached():
        first = trial_module.get_trainable_cls("run_trial")
        trial_module.validate_trainable("run_trial")
        assert trial_module.get_trainable_cls("run_trial") is first
        other = trial_module.get_trainable_cls("other")
        with pytest.raises(ValueError, match="Unknown trainable"):
            trial_module.validate_trainable("unknown")
    assert other is not first
    assert asked == ["run_trial", "other", "validate unknown"]
    assert trial_module.get_trainable_cls is get and trial_module.validate_trainable is validate
