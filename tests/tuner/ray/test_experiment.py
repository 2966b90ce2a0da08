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


class _Trial:
    """What the reuse rule and Tune's own reuse read of a Tune trial."""

    def __init__(self, resources: str = "1 CPU") -> None:
        self.placement_group_factory = resources
        self.config: dict[str, Any] = {}
        self.experiment_tag = ""

    def set_ray_actor(self, actor: Any) -> None:
        pass


def _controller(started: set[str]) -> Any:
    """A stand-in for Tune's controller with one worker cached: which actors exist, which of
    them have a process (``started``), and what Tune's own reuse does with the cached one."""
    from unittest import mock

    c = mock.MagicMock()
    c._trial_to_actor, c._actor_to_trial, c._resetting_trials, c._pending_trials = {}, {}, set(), set()
    c._actor_manager.is_actor_started.side_effect = lambda actor: actor in started
    c._actor_cache.has_cached_object.return_value = True
    c._actor_cache.pop_cached_object.return_value = "cached"
    c._actor_manager._live_actors_to_ray_actors_resources = {"cached": ("ray actor", None)}
    return c


def test_a_trial_whose_worker_is_starting_leaves_an_ended_trials_worker_to_a_trial_without_one() -> None:
    from ray.tune.execution.tune_controller import TuneController

    from tuner.ray.experiment import starting_actors_kept

    tune_reuse = TuneController._maybe_reuse_cached_actor
    starting, waiting, fresh, other = _Trial(), _Trial(), _Trial(), _Trial("1 GPU")
    with starting_actors_kept():
        c = _controller(started={"starting-process"})
        c._trial_to_actor.update({starting: "starting-process", waiting: "waiting-for-resources"})
        c._actor_to_trial.update({"starting-process": starting, "waiting-for-resources": waiting})
        c._pending_trials.update({starting, waiting})
        # its process is being started and another trial can take the cached worker: it waits
        assert TuneController._maybe_reuse_cached_actor(c, starting) is False
        c._remove_actor.assert_not_called()
        c._actor_cache.pop_cached_object.assert_not_called()
        # a trial whose actor only waits for resources takes the cached worker (no process killed)
        assert TuneController._maybe_reuse_cached_actor(c, waiting) is True
        c._remove_actor.assert_called_once_with(tracked_actor="waiting-for-resources")
        assert c._trial_to_actor[waiting] == "cached"

        c = _controller(started={"starting-process", "cached"})
        c._trial_to_actor.update({starting: "starting-process", fresh: "cached"})
        c._actor_to_trial.update({"starting-process": starting})
        c._pending_trials.update({starting, other})  # none other with its resources and no process
        assert TuneController._maybe_reuse_cached_actor(c, starting) is True  # Tune's way: no idle worker
        c._remove_actor.assert_called_once_with(tracked_actor="starting-process")

        c = _controller(started={"starting-process"})
        c._trial_to_actor[starting] = "starting-process"
        c._pending_trials.update({starting, fresh})  # a trial with no actor at all
        assert TuneController._maybe_reuse_cached_actor(c, starting) is False
        assert TuneController._maybe_reuse_cached_actor(c, fresh) is True
        c._remove_actor.assert_not_called()  # it had no actor to remove
    assert TuneController._maybe_reuse_cached_actor is tune_reuse  # Tune's own, back after the block


def test_on_a_local_instance_no_more_trial_processes_start_at_once_than_it_has_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collections import defaultdict

    from ray.air.execution._internal.actor_manager import RayActorManager

    from tuner.ray import experiment

    def ray_start(self: Any, max_actors: int | None = None) -> int:
        """Ray's: every pending actor whose resources are there starts (here, all of them)."""
        started = 0
        for actors in self._resource_request_to_pending_actors.values():
            while actors:
                actor = actors.pop(0)
                self._live_actors_to_ray_actors_resources[actor] = ("ray actor", None)
                self._tracked_actors_to_state_futures[actor].add(f"{actor} ready")
                started += 1
        return started

    class Manager:
        def __init__(self, n: int) -> None:
            self._resource_request_to_pending_actors = {"1 CPU": [f"a{i}" for i in range(n)]}
            self._tracked_actors_to_state_futures: dict[str, set[str]] = defaultdict(set)
            self._live_actors_to_ray_actors_resources: dict[str, Any] = {}

    monkeypatch.setattr(RayActorManager, "_try_start_actors", ray_start)
    monkeypatch.setattr(experiment, "_one_local_node", lambda: True)
    m = Manager(5)
    with experiment.staggered_starts(limit=2):
        start = RayActorManager._try_start_actors
        assert start(m) == 2 and sorted(m._live_actors_to_ray_actors_resources) == ["a0", "a1"]
        assert start(m) == 0  # both still starting
        assert m._resource_request_to_pending_actors["1 CPU"] == ["a2", "a3", "a4"]  # held back, in order
        m._tracked_actors_to_state_futures["a0"].clear()  # a0 is up
        assert start(m) == 1 and "a2" in m._live_actors_to_ray_actors_resources
        del m._tracked_actors_to_state_futures["a1"]  # a1 was removed while starting
        m._tracked_actors_to_state_futures["a0"].add("a0 stop")  # a stopping process is not starting
        assert start(m) == 1 and m._resource_request_to_pending_actors["1 CPU"] == ["a4"]
    assert RayActorManager._try_start_actors is ray_start  # Ray's own, back after the block
    monkeypatch.setattr(experiment, "_one_local_node", lambda: False)  # a cluster: Ray's own
    with experiment.staggered_starts(limit=2):
        assert RayActorManager._try_start_actors is ray_start
        assert ray_start(Manager(5)) == 5
