"""Ray Tune's internals replaced for an experiment: each does its job within the block and
leaves Ray's own after it."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

from tuner.ray import tune_patches
from tuner.ray.tune_patches import SNAPSHOT_FLOOR_S, snapshot_floor


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


def test_the_trainable_is_looked_up_once_a_name_within_an_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tune asks the GCS for a trial's trainable several times a trial; within the block the
    driver asks once a name, an unknown name still fails as Tune's own check does, and the
    lookups are Tune's own again after it."""
    from ray.tune.experiment import trial as trial_module

    from tuner.ray.tune_patches import trainable_lookups_cached

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

    from tuner.ray.tune_patches import starting_actors_kept

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
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)
    m = Manager(5)
    with tune_patches.staggered_starts(limit=2):
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
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: False)  # a cluster: Ray's own
    with tune_patches.staggered_starts(limit=2):
        assert RayActorManager._try_start_actors is ray_start
        assert ray_start(Manager(5)) == 5


def test_a_local_instance_takes_trial_resources_from_a_budget_and_a_cluster_keeps_placement_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.air.execution.resources.fixed import FixedResourceManager
    from ray.air.execution.resources.placement_group import PlacementGroupResourceManager
    from ray.tune.execution import tune_controller

    assert tune_controller.PlacementGroupResourceManager is PlacementGroupResourceManager
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)
    with tune_patches.budgeted_resources():
        assert tune_controller.PlacementGroupResourceManager is FixedResourceManager
    assert tune_controller.PlacementGroupResourceManager is PlacementGroupResourceManager
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: False)  # a node joined: a cluster
    with tune_patches.budgeted_resources():
        assert tune_controller.PlacementGroupResourceManager is PlacementGroupResourceManager


def test_no_result_table_is_read_within_the_block_and_tunes_reading_is_back_after_it() -> None:
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    tune_fetch = ExperimentAnalysis._fetch_trial_dataframes
    with tune_patches.trial_tables_unread():
        assert ExperimentAnalysis._fetch_trial_dataframes(object()) == {}  # type: ignore[arg-type]
    assert ExperimentAnalysis._fetch_trial_dataframes is tune_fetch


def test_an_experiments_callbacks_are_not_tagged_so_mlflow_is_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.air._internal import usage
    from ray.tune import Callback

    # Ray's tag imports its MLflow integration (and mlflow with it) to compare class names
    monkeypatch.setitem(sys.modules, "ray.air.integrations.mlflow", None)  # an import of it raises
    with tune_patches.callbacks_untagged():
        assert not usage.tag_callbacks([Callback()])
    with pytest.raises(ImportError):
        usage.tag_callbacks([Callback()])  # Ray's own again


def test_trial_processes_get_no_runtime_environment_unless_tune_has_the_drivers_variables_to_hand_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray starts a worker with a runtime environment through a second Python process; Tune's
    own (``PL_DISABLE_FORK``) is left out, and set by the trial's module instead. The driver's
    AWS credentials still travel Tune's way."""
    import os

    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE, _ActorClassCache

    for name in ENV_VARS_TO_PROPAGATE:
        monkeypatch.delenv(name, raising=False)

    class Plain:
        pass

    class Handed:
        pass

    tune_get = _ActorClassCache.get
    with tune_patches.plain_trial_processes():
        cache = _ActorClassCache()
        plain = cache.get(Plain)
        assert "runtime_env" not in plain._default_options
        assert cache.get(Plain) is plain  # registered once
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
        handed = cache.get(Handed)
        assert handed._default_options["runtime_env"]["env_vars"] == {
            "PL_DISABLE_FORK": "1",
            "AWS_ACCESS_KEY_ID": "key",
        }
    assert _ActorClassCache.get is tune_get
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    assert _ActorClassCache().get(Plain)._default_options["runtime_env"]["env_vars"] == {"PL_DISABLE_FORK": "1"}

    import tuner.ray.worker  # the trial's module: what Tune's environment set, it sets

    assert tuner.ray.worker is not None and os.environ["PL_DISABLE_FORK"] == "1"


def test_a_replaced_piece_is_put_back_when_the_block_fails() -> None:
    class Owner:
        piece = "ray's"

    with pytest.raises(RuntimeError), tune_patches.swapped(Owner, "piece", "tuner's"):
        assert Owner.piece == "tuner's"
        raise RuntimeError("a trial's error")
    assert Owner.piece == "ray's"


class _LoggedTrial:
    """What Ray's loggers read of a trial that has a checkpoint: its folder on the driver
    (``local``) and in the run directory (``remote``)."""

    def __init__(self, local: Path, remote: Path, filesystem: Any = None) -> None:
        import pyarrow.fs

        self.local_path = str(local)
        self.checkpoint = object()
        self.config = {"train": {"lr": 0.05}}
        fs = filesystem if filesystem is not None else pyarrow.fs.LocalFileSystem()
        self.storage = SimpleNamespace(storage_filesystem=fs, trial_fs_path=str(remote))
        self.init_local_path()  # Tune makes it as it creates the trial

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def _epochs_logged(tmp_path: Path, restart: Callable[[], Any], *, local_first: bool = True) -> dict[str, list[int]]:
    """Ray's JSON and CSV loggers write epochs 1-3 of a trial into the driver's folder; the run
    directory has a copy made after epoch 2 (a snapshot ago). The trial fails and restarts from
    its checkpoint (each logger's trial start, within ``restart()``), then reports epochs 4-6.
    Returns the epochs of each file in the driver's folder. With ``local_first=False`` the
    driver's folder is new (a resumed experiment) and the run directory has epochs 1-3."""
    import shutil

    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    local, remote = tmp_path / "staging" / "trial", tmp_path / "run" / "trial"
    trial = _LoggedTrial(local, remote)
    loggers = [JsonLoggerCallback(), CSVLoggerCallback()]
    if local_first:
        for epoch in (1, 2, 3):
            if epoch == 3:  # the run directory's copy: a snapshot behind
                shutil.copytree(local, remote)
            for logger in loggers:
                logger.log_trial_result(epoch, trial, {"epoch": epoch})
        for logger in loggers:
            logger.log_trial_end(trial, failed=True)
    else:  # an earlier driver's run directory, whole
        earlier = [JsonLoggerCallback(), CSVLoggerCallback()]
        made = _LoggedTrial(remote, tmp_path / "none")
        for epoch in (1, 2, 3):
            for logger in earlier:
                logger.log_trial_result(epoch, made, {"epoch": epoch})
        for logger in earlier:
            logger.log_trial_end(made)
    with restart():
        for epoch in (4, 5, 6):
            for logger in loggers:
                logger.log_trial_result(epoch, trial, {"epoch": epoch})
    for logger in loggers:
        logger.log_trial_end(trial)
    rows = (local / "result.json").read_text().splitlines()
    with (local / "progress.csv").open() as f:
        table = list(csv.DictReader(f))
    return {"json": [json.loads(r)["epoch"] for r in rows], "csv": [int(r["epoch"]) for r in table]}


def test_a_trial_restarted_from_its_checkpoint_keeps_the_rows_the_run_directory_had_not_copied_yet(
    tmp_path: Path,
) -> None:
    """Ray's loggers copied the run directory's result.json and progress.csv over the driver's
    as the trial restarted: the rows since the last snapshot (epoch 3 here) were lost."""
    whole = {"json": [1, 2, 3, 4, 5, 6], "csv": [1, 2, 3, 4, 5, 6]}
    assert _epochs_logged(tmp_path / "ray", contextlib.nullcontext) == {
        "json": [1, 2, 4, 5, 6],
        "csv": [1, 2, 4, 5, 6],
    }  # Ray's own: the control
    assert _epochs_logged(tmp_path / "kept", tune_patches.trial_logs_kept) == whole
    # a resumed experiment's driver has a new, empty folder: the run directory's copy is taken
    resumed = _epochs_logged(tmp_path / "resumed", tune_patches.trial_logs_kept, local_first=False)
    assert resumed == whole
    from ray.tune.logger import logger as tune_logger

    assert "kept" not in tune_logger.LoggerCallback._restore_from_remote.__qualname__


def test_a_restarted_trial_whose_driver_has_its_rows_does_not_ask_the_storage(tmp_path: Path) -> None:
    from ray.tune.logger import JsonLoggerCallback

    class Unreachable:  # an object store that is down: any request fails
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the storage was asked ({name})")

    trial = _LoggedTrial(tmp_path / "staging", tmp_path / "run", filesystem=Unreachable())
    logger = JsonLoggerCallback()
    logger.log_trial_result(1, trial, {"epoch": 1})
    logger.log_trial_end(trial, failed=True)
    with tune_patches.trial_logs_kept():
        logger.log_trial_result(2, trial, {"epoch": 2})
    logger.log_trial_end(trial)
    rows = (tmp_path / "staging" / "result.json").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2]
