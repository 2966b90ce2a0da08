"""Running a sweep's trials as one Ray Tune experiment, and resuming it.

Every round's trials run in one experiment (:class:`tuner.ray.search.RoundSearcher` hands them
out round after round): :func:`tuner.ray.worker.run_trial` with the sweep's function, its base
config and the data (shipped once through the object store), under ASHA or FIFO, with actor
reuse and batched results. Ctrl-C leaves the experiment resumable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from tuner.progress import TrialEvent
from tuner.ray.asha import ResumableASHA, SchedulerState, scheduler
from tuner.ray.batching import batched, batching
from tuner.ray.callbacks import EpochTensorBoard, JournalCallback, Outcome, ProgressCallback, mlflow_callback
from tuner.ray.cluster import is_client, setting
from tuner.ray.search import RoundSearcher, SearcherLink
from tuner.ray.worker import run_trial
from tuner.spec import SchedulerSpec
from tuner.tracking import MlflowTarget


@dataclass
class ExperimentSettings:
    """Everything the experiment of a sweep (every round of it) needs."""

    storage: str | Path  # the run directory (a path or a URI); the trials go under storage/name
    name: str  # the experiment's folder (tuner.records.EXPERIMENT_DIR)
    trial_args: dict[str, Any]  # run_trial's keywords (function, base, data, metric, mode, seed...)
    searcher: RoundSearcher  # hands out every round's configurations
    num_samples: int  # trials in all rounds
    metric: str
    mode: str
    scheduler: SchedulerSpec
    cpu: float
    gpu: float
    max_failures: int
    on_progress: Callable[[list[TrialEvent]], None] | None = None
    progress_every_s: float = 5.0
    mlflow: MlflowTarget | None = None  # log each trial as an MLflow run (tuner[mlflow] installed)
    callbacks: list[Any] = field(default_factory=list)  # more Tune callbacks (e.g. the Optuna journal)


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
def _swapped(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name`` (a piece of Ray Tune's internals) replaced by ``value`` for the block,
    and Ray's own put back afterwards."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@contextlib.contextmanager
def driver_settings(s: ExperimentSettings) -> Iterator[None]:
    """What the driver sets for the length of one experiment, started or resumed: result
    batching, trials created ahead, the trainable looked up once, a trial process that is
    starting kept, no result tables read at the end, and on a local instance each trial's
    resources from a budget instead of a placement group and no more trial processes starting
    at once than it has cores."""
    with batching(), pending_trials(s), trainable_lookups_cached(), starting_actors_kept():
        with budgeted_resources(), staggered_starts(), trial_tables_unread():
            yield


@contextlib.contextmanager
def trial_tables_unread() -> Iterator[None]:
    """At an experiment's end Tune reads every trial's ``result.json`` into a pandas table for
    the result grid ``Tuner.fit`` returns: ~2.5 ms a trial, after the last trial has ended (5 s
    at 2,000 trials, ~25 s at 10,000). tuner reads a run's results its own way
    (:mod:`tuner.results`) and never uses that grid, so within this block Tune reads none (the
    grid's results keep their last metrics, without a table)."""
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    with _swapped(ExperimentAnalysis, "_fetch_trial_dataframes", lambda self: {}):
        yield


def _one_local_node() -> bool:
    """A local instance (:func:`tuner.ray.cluster.on_local_instance`: one machine whose
    resources do not change) that no other node joined."""
    from tuner.ray.cluster import on_local_instance
    from tuner.ray.nodes import cluster_nodes

    return on_local_instance() and len(cluster_nodes()) == 1


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
    if not _one_local_node():
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

    with _swapped(RayActorManager, "_try_start_actors", start):
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

    with _swapped(controller, "_maybe_reuse_cached_actor", reuse):
        yield


@contextlib.contextmanager
def budgeted_resources() -> Iterator[None]:
    """On a local instance (:func:`tuner.ray.cluster.on_local_instance`: one machine whose
    resources do not change) Tune takes each trial's CPUs and GPUs from a budget the driver
    keeps (Ray's ``FixedResourceManager``) instead of creating, waiting for and removing a
    placement group for every trial: GCS round trips, and 9% of the driver's CPU a trial at
    2,000 one-second trials (BENCHMARKS.md k). A cluster keeps Tune's placement groups: they
    are what asks its autoscaler for nodes, and what follows a node that dies."""
    if not _one_local_node():  # a node that joined it: a cluster
        yield
        return
    from ray.air.execution.resources.fixed import FixedResourceManager
    from ray.tune.execution import tune_controller

    with _swapped(tune_controller, "PlacementGroupResourceManager", FixedResourceManager):
        yield


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
        _swapped(trial_module, "get_trainable_cls", cached_get),
        _swapped(trial_module, "validate_trainable", cached_validate),
    ):
        yield


@contextlib.contextmanager
def pending_trials(s: ExperimentSettings) -> Iterator[None]:
    """Let Tune create as many trials ahead as the cluster can run at once. Ray 2.60 keeps a
    custom searcher (ours) to ONE pending trial (``TUNE_MAX_PENDING_TRIALS_PG=auto``), so a
    trial that ends waits for the next to be created and placed alone: with short trials half
    of a 4-CPU machine sat idle (``benchmarks/driver_scale.py``). Set for our experiments
    alone; a user's own ``TUNE_MAX_PENDING_TRIALS_PG`` wins."""
    with setting("TUNE_MAX_PENDING_TRIALS_PG", str(max_pending(s))):
        yield


def max_pending(s: ExperimentSettings) -> int:
    """Trials that fit the cluster at once (by CPUs, and GPUs when a trial asks for some),
    at most ``max_concurrent`` and the sweep's trials, at least 1."""
    import ray

    resources = ray.cluster_resources() if ray.is_initialized() else {}
    fits = [resources.get("CPU", 1.0) / s.cpu] if s.cpu > 0 else []
    if s.gpu > 0:
        fits.append(resources.get("GPU", 0.0) / s.gpu)
    slots = int(min(fits)) if fits else 1
    if s.searcher.max_concurrent:
        slots = min(slots, s.searcher.max_concurrent)
    return max(1, min(slots, s.num_samples))


def _trainable(s: ExperimentSettings) -> Any:
    function = tune.with_parameters(run_trial, **s.trial_args)
    return tune.with_resources(batched(function, set(s.scheduler.milestones())), {"cpu": s.cpu, "gpu": s.gpu})


def run_experiment(s: ExperimentSettings) -> None:
    """Run every round's trials to completion (ASHA stops some early).

    Raises:
        KeyboardInterrupt: the round was interrupted (Ctrl-C); its state is saved and
            :func:`resume_experiment` continues it.
    """
    snapshot_floor()
    sched = scheduler(s.scheduler)
    outcome = Outcome()
    callbacks: list[Any] = [outcome, SearcherLink(s.searcher), EpochTensorBoard(), *s.callbacks]
    if s.on_progress and not is_client():
        callbacks.append(ProgressCallback(s.on_progress, s.progress_every_s))
    if isinstance(sched, ResumableASHA):
        callbacks.append(SchedulerState(sched))
    if s.mlflow is not None:
        callbacks.append(mlflow_callback(s.mlflow))
    tuner = tune.Tuner(
        _trainable(s),
        tune_config=tune.TuneConfig(
            metric=s.metric,
            mode=s.mode,
            num_samples=s.num_samples,
            search_alg=s.searcher,
            scheduler=sched,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=s.name,
            storage_path=str(s.storage),
            verbose=0,
            progress_reporter=None,
            callbacks=callbacks,
            # two kept a trial: with one, every trial checkpoint forces a snapshot of the whole
            # experiment (Ray keeps the snapshot and the newest checkpoint in step), O(trials) each
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
        ),
    )
    with driver_settings(s):
        tuner.fit()
    _raise_if_interrupted(outcome)


def _raise_if_interrupted(outcome: Outcome | None) -> None:
    if outcome is not None and outcome.unfinished:
        raise KeyboardInterrupt(f"{outcome.unfinished} trials unfinished")


def _join(storage: str | Path, name: str) -> str:
    return str(storage).rstrip("/") + "/" + name


def can_resume(storage: str | Path, name: str) -> bool:
    """Whether ``storage/name`` holds a Tune experiment that :func:`resume_experiment` can continue."""
    try:
        return bool(tune.Tuner.can_restore(_join(storage, name)))
    except Exception:  # an unreadable or foreign folder: nothing to restore
        return False


def resume_experiment(s: ExperimentSettings) -> None:
    """Continue an interrupted round from its saved state: finished trials stay finished,
    unfinished and errored ones go on from their last checkpoints, the searcher and ASHA's
    rung records are restored. ``s`` must describe the same round as at its start (its
    trainable and data are handed in again: Tune saves neither); its search space and
    scheduler come from the saved state.

    The saved state (``tuner.pkl``, the experiment and callback snapshots) is unpickled:
    run only on run directories from a trusted source.
    """
    snapshot_floor()
    tuner = tune.Tuner.restore(
        _join(s.storage, s.name), trainable=_trainable(s), resume_unfinished=True, resume_errored=True
    )
    outcome = None
    local = getattr(tuner, "_local_tuner", None)  # None through Ray Client (the Tuner runs on the head)
    if local is not None:
        for cb in local.get_run_config().callbacks or []:
            if isinstance(cb, ProgressCallback):
                cb.on_step = s.on_progress
                cb.every_s = s.progress_every_s
            elif isinstance(cb, Outcome):
                outcome = cb
            elif isinstance(cb, JournalCallback):  # the journal of the run directory as it is now
                cb.reattach(s.callbacks)
            elif isinstance(cb, SearcherLink):  # the searcher Tune restored: the driver's hook again
                cb.searcher.hook = s.searcher.hook
    with driver_settings(s):
        tuner.fit()
    _raise_if_interrupted(outcome)
