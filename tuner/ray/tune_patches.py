"""Ray Tune's internals, replaced for the length of an experiment.

Ray Tune 2.60 has no setting for any of these. Each context manager here swaps a piece of
Tune (:func:`swapped`) and puts Ray's own back when the block ends, so a user's own Tune code
in the same process is left as Ray wrote it; :func:`tuner.ray.experiment.driver_settings`
enters them all. ``benchmarks/driver_ab.py`` measures each one made for speed against itself
undone (BENCHMARKS.md k); the others are tested against Ray's own. :func:`snapshot_floor`
alone stays for the process: it is the floor of Ray's snapshot period, and
``tuner.ray.settings`` sets that period for every experiment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The shortest period between two snapshots of the experiment's state (see snapshot_floor).
SNAPSHOT_FLOOR_S = 0.5


def snapshot_floor(seconds: float = SNAPSHOT_FLOOR_S) -> None:
    """Ray's "auto" snapshot period (``TUNE_GLOBAL_CHECKPOINT_S=auto``: 19 times what the last
    snapshot took, so snapshots cost at most 5% of the driver's time) with a floor of ``seconds``
    instead of Ray's 10 s. A snapshot writes every trial's state: at a fixed 0.5 s period its
    cost grows with the number of trials until it is all the driver does (a 1,000-trial sweep
    spent most of its driver CPU there); at 10 s a killed driver loses 10 s of results. Ray
    2.60 has no setting for the floor, so its period update is replaced, here, once."""
    from ray.tune.execution import experiment_state

    manager = experiment_state._ExperimentCheckpointManager
    if getattr(manager, "_tuner_floor_s", None) == seconds:
        return
    if not hasattr(manager, "_update_auto_checkpoint_time"):  # Ray changed: keep its own rule
        return

    def update(self: Any, time_taken: float) -> None:
        if self._auto_checkpoint_enabled:
            self._checkpoint_period = max(seconds, time_taken * 19)

    manager._update_auto_checkpoint_time = update
    manager._tuner_floor_s = seconds


@contextlib.contextmanager
def swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name`` (a piece of Ray Tune's internals) replaced by ``value`` for the block,
    and Ray's own put back afterwards."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextlib.contextmanager
def trainable_lookups_cached() -> Iterator[None]:
    """Tune looks a trial's trainable up by name in the GCS's key-value store every time it
    needs it: two round trips and an unpickling, several times for every trial it starts
    (~7 ms of the driver's CPU a trial, a fifth of it: BENCHMARKS.md k). The trainable
    registered for an experiment does not change while it runs, so within this block the
    driver asks once a name."""
    from ray.tune.experiment import trial as trial_module

    get, validate = trial_module.get_trainable_cls, trial_module.validate_trainable
    found: dict[str, Any] = {}

    def cached_get(name: str) -> Any:
        if name not in found:
            found[name] = get(name)
        return found[name]

    def cached_validate(name: str) -> None:
        if name not in found:
            validate(name)

    with (
        swapped(trial_module, "get_trainable_cls", cached_get),
        swapped(trial_module, "validate_trainable", cached_validate),
    ):
        yield


@contextlib.contextmanager
def starting_actors_kept() -> Iterator[None]:
    """A trial whose own worker process is starting waits for it, instead of taking a worker
    that an ended trial left (Tune's actor reuse), when another pending trial can take that
    one: one with no worker process of its own yet (none asked for, or waiting for resources).

    Tune's way kills the starting process. When a process takes longer to start (Ray, its
    imports, the function's module) than a trial takes to run, as with short trials, or
    many slots on few cores, no new process ever survives its start: the sweep runs on the
    few workers that were ready first while the rest of its slots start and are killed over
    and over (7 of 16 slots busy, 200 one-second trials: BENCHMARKS.md k). Where no other
    pending trial can take the ended trial's worker, Tune's way stands: no worker is left idle.
    """
    from ray.tune.execution import tune_controller

    controller = tune_controller.TuneController
    tune_reuse = controller._maybe_reuse_cached_actor

    def reuse(self: Any, trial: Any) -> bool:
        def started(t: Any) -> bool:  # its actor's process is created (starting or up)
            actor = self._trial_to_actor.get(t)
            return actor is not None and self._actor_manager.is_actor_started(actor)

        if (
            trial not in self._resetting_trials
            and started(trial)
            and any(
                other is not trial
                and other.placement_group_factory == trial.placement_group_factory
                and not started(other)
                for other in self._pending_trials
            )
        ):
            return False
        return tune_reuse(self, trial)

    with swapped(controller, "_maybe_reuse_cached_actor", reuse):
        yield


@contextlib.contextmanager
def budgeted_resources() -> Iterator[None]:
    """On a local instance (:func:`tuner.ray.cluster.on_local_instance`: one machine whose
    resources do not change) Tune takes each trial's CPUs and GPUs from a budget the driver
    keeps (Ray's ``FixedResourceManager``) instead of creating, waiting for and removing a
    placement group for every trial: GCS round trips, and 9% of the driver's CPU a trial at
    2,000 one-second trials (BENCHMARKS.md k). A cluster keeps Tune's placement groups: they
    are what asks its autoscaler for nodes, and what follows a node that dies."""
    if not one_local_node():  # a node that joined it: a cluster
        yield
        return
    from ray.air.execution.resources.fixed import FixedResourceManager
    from ray.tune.execution import tune_controller

    with swapped(tune_controller, "PlacementGroupResourceManager", FixedResourceManager):
        yield


@contextlib.contextmanager
def staggered_starts(limit: int | None = None) -> Iterator[None]:
    """On a local instance, at most ``limit`` (this machine's cores) trial processes starting
    at once; the next starts as one is up.

    Ray starts worker processes a core at a time, but each then imports Ray Tune and the
    trial's module at once with all the others, sharing the cores: with more slots than
    cores (sleeping or waiting trials, ``--num-cpus`` above the cores) every process is up
    only when the last one is. Started a core's worth at a time, the first trials run while
    the rest start. With no more slots than cores this never holds a process back.
    """
    if not one_local_node():
        yield
        return
    from ray.air.execution._internal.actor_manager import RayActorManager

    cores = limit or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    tune_start = RayActorManager._try_start_actors

    def start(self: Any, max_actors: int | None = None) -> int:
        starting: dict[Any, Any] = self.__dict__.setdefault("_tuner_starting", {})  # actor: its ready future
        for actor, ready in list(starting.items()):
            if ready not in self._tracked_actors_to_state_futures.get(actor, ()):
                del starting[actor]  # up, or removed
        room = cores - len(starting)
        if room <= 0:
            return 0
        held = {}
        for request, actors in self._resource_request_to_pending_actors.items():
            if len(actors) > room:
                held[request] = actors[room:]
                del actors[room:]
        before = set(self._live_actors_to_ray_actors_resources)
        try:
            started = tune_start(self, max_actors)
        finally:
            for request, rest in held.items():
                self._resource_request_to_pending_actors[request].extend(rest)
        for actor in set(self._live_actors_to_ray_actors_resources) - before:
            futures = self._tracked_actors_to_state_futures.get(actor)
            if futures:
                starting[actor] = next(iter(futures))  # its __ray_ready__
        return int(started)

    with swapped(RayActorManager, "_try_start_actors", start):
        yield


@contextlib.contextmanager
def trial_tables_unread() -> Iterator[None]:
    """At an experiment's end Tune reads every trial's ``result.json`` into a pandas table for
    the result grid ``Tuner.fit`` returns: ~2.5 ms a trial, after the last trial has ended (5 s
    at 2,000 trials, ~25 s at 10,000). tuner reads a run's results its own way
    (:mod:`tuner.results`) and never uses that grid, so within this block Tune reads none (the
    grid's results keep their last metrics, without a table)."""
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    with swapped(ExperimentAnalysis, "_fetch_trial_dataframes", lambda self: {}):
        yield


@contextlib.contextmanager
def callbacks_untagged() -> Iterator[None]:
    """As an experiment starts, Tune records for Ray's usage statistics which kinds of
    callbacks it was given, and imports Ray's MLflow, W&B and Comet integrations to compare
    class names: where mlflow is installed (tuner's ``mlflow`` extra) that imports mlflow, 1.1
    s of the driver's CPU before the first trial's process is asked for, in every run, with
    ``--mlflow`` or not (BENCHMARKS.md i). Within this block that one tag is not recorded;
    Ray's other usage statistics are as Ray keeps them."""
    from ray.air._internal import usage

    with swapped(usage, "tag_callbacks", lambda callbacks: False):
        yield


@contextlib.contextmanager
def plain_trial_processes() -> Iterator[None]:
    """Trial processes started as plain Ray workers, with no runtime environment of their own,
    when Tune has nothing of the driver's to hand them.

    Tune gives every trial actor the runtime environment ``{"env_vars": {"PL_DISABLE_FORK":
    "1"}}`` (and the driver's AWS credentials and a few Ray Train settings where those are set).
    Ray starts a worker with a runtime environment through ``setup_worker.py``: a first Python
    process that imports Ray's runtime-environment code (0.5 s of CPU), then execs the real
    worker, which starts Python and imports Ray again, after a round trip to the node's
    runtime-environment agent. Every trial process paid it before its first step (BENCHMARKS.md
    i). Within this block, when the environment would hold only ``PL_DISABLE_FORK`` the actor
    gets none, and the trial's process sets that variable itself (:mod:`tuner.ray.worker`).
    With anything else to hand over, Tune's way stands."""
    from ray.tune.execution import class_cache

    tune_get = class_cache._ActorClassCache.get

    def get(self: Any, trainable_cls: Any) -> Any:
        if handed_over():
            return tune_get(self, trainable_cls)
        if trainable_cls not in self._cache:
            import ray

            self._cache[trainable_cls] = ray.remote(trainable_cls)
        return self._cache[trainable_cls]

    with swapped(class_cache._ActorClassCache, "get", get):
        yield


@contextlib.contextmanager
def whole_file_syncs() -> Iterator[None]:
    """The driver's copies of its staging folder to a run directory on a local disk made file
    by file through a temporary name and a rename, looking only where trials can still write
    (:mod:`tuner.ray.syncing`), so a driver killed during one leaves no file empty there. Ray's
    copy stands for an object store."""
    import time

    from ray.train._internal import storage
    from ray.tune.execution import tune_controller

    from tuner.ray.syncing import Uploads

    ray_upload = storage._upload_to_fs_path
    tune_command = storage._FilesystemSyncer._sync_up_command
    tune_checkpoint = tune_controller.TuneController.checkpoint
    uploads = Uploads(ray_upload)

    def command(self: Any, local_path: str, uri: str, exclude: list[str] | None = None) -> tuple[Any, dict[str, Any]]:
        run, kwargs = tune_command(self, local_path=local_path, uri=uri, exclude=exclude)
        return (uploads if run is ray_upload else run), kwargs

    def checkpoint(self: Any, force: bool = False, wait: bool = False) -> None:
        manager = self._checkpoint_manager  # Ray's rule for a snapshot being due (one that copies)
        last, period = getattr(manager, "_last_save_time", None), getattr(manager, "_checkpoint_period", None)
        due = force or getattr(manager, "_should_force_sync_up", True) or last is None or period is None
        if due or time.monotonic() - last >= period:
            uploads.note(self._trials)
        return tune_checkpoint(self, force=force, wait=wait)

    with (
        swapped(storage._FilesystemSyncer, "_sync_up_command", command),
        swapped(tune_controller.TuneController, "checkpoint", checkpoint),
    ):
        yield


@contextlib.contextmanager
def trial_logs_kept() -> Iterator[None]:
    """A trial's ``result.json`` and ``progress.csv`` kept whole as it restarts after a failure.

    As a trial with a checkpoint starts, Ray's loggers copy the run directory's version of each
    file over the driver's (``LoggerCallback._restore_from_remote``). That serves a resumed
    experiment, whose driver has no copy of its own. Within one driver, though, the run
    directory's copy lags the driver's by up to one snapshot period (:mod:`tuner.ray.syncing`):
    a trial that failed within it lost the rows it had reported since, seen in CI as a trial
    that failed one epoch after its checkpoint and whose history went on without that epoch.
    The driver's file only grows by appending and the run directory's is a copy of it, so here
    the run directory's is taken only where the driver has no rows of its own (a resumed
    experiment: its staging folder is a new one), and the storage is not asked otherwise."""
    from ray.tune.logger import logger as tune_logger

    restore = tune_logger.LoggerCallback._restore_from_remote

    def kept(self: Any, file_name: str, trial: Any) -> None:
        try:
            if Path(trial.local_path, file_name).stat().st_size:
                return
        except OSError:  # none yet
            pass
        restore(self, file_name, trial)

    with swapped(tune_logger.LoggerCallback, "_restore_from_remote", kept):
        yield


def handed_over() -> set[str]:
    """The driver's variables Ray Tune hands to every trial's process through a runtime
    environment (its AWS credentials and a few Ray Train settings, where set); with none,
    :func:`plain_trial_processes` starts trial processes as plain workers."""
    from ray.tune.execution import class_cache

    return {name for name in class_cache.ENV_VARS_TO_PROPAGATE if name in os.environ}


def one_local_node() -> bool:
    """A local instance (:func:`tuner.ray.cluster.on_local_instance`: one machine whose
    resources do not change) that no other node joined."""
    from tuner.ray.cluster import on_local_instance
    from tuner.ray.nodes import cluster_nodes

    return on_local_instance() and len(cluster_nodes()) == 1
