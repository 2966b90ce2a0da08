"""Running one round of a sweep as a Ray Tune experiment, and resuming it.

A round's trials all run :func:`tuner.ray.worker.run_trial` with the sweep's function, its
base config and the data (shipped once through the object store), under ASHA or FIFO, with
actor reuse and batched results. Ctrl-C leaves the round resumable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from tuner.progress import TrialEvent
from tuner.ray.asha import ResumableASHA, SchedulerState, scheduler
from tuner.ray.batching import batched, batching
from tuner.ray.callbacks import EpochTensorBoard, Outcome, ProgressCallback, mlflow_callback
from tuner.ray.cluster import is_client
from tuner.ray.search import search_algorithm
from tuner.ray.worker import run_trial
from tuner.space import Parameter
from tuner.spec import SchedulerSpec
from tuner.tracking import MlflowTarget


@dataclass
class RoundSettings:
    """Everything one Ray Tune experiment (one round of a sweep) needs."""

    storage: str | Path  # the run directory (a path or a URI); the round's trials go under storage/name
    name: str  # e.g. "round-0"
    trial_args: dict[str, Any]  # run_trial's keywords (function, base, data, metric, mode, seed...)
    params: Sequence[Parameter]
    method: str
    num_samples: int
    seed: int
    metric: str
    mode: str
    scheduler: SchedulerSpec
    cpu: float
    gpu: float
    max_failures: int
    max_concurrent: int = 0
    on_progress: Callable[[list[TrialEvent]], None] | None = None
    progress_every_s: float = 5.0
    mlflow: MlflowTarget | None = None  # log each trial as an MLflow run (tuner[mlflow] installed)
    callbacks: list[Any] = field(default_factory=list)  # more Tune callbacks (e.g. the Optuna journal)


def _trainable(s: RoundSettings) -> Any:
    function = tune.with_parameters(run_trial, **s.trial_args)
    return tune.with_resources(batched(function, set(s.scheduler.milestones())), {"cpu": s.cpu, "gpu": s.gpu})


def run_round(s: RoundSettings) -> None:
    """Run one round of trials to completion (ASHA stops some early).

    Raises:
        KeyboardInterrupt: the round was interrupted (Ctrl-C); its state is saved and
            :func:`resume_round` continues it.
    """
    search_alg, space = search_algorithm(s.params, s.method, s.metric, s.mode, s.seed, s.max_concurrent)
    sched = scheduler(s.scheduler)
    outcome = Outcome()
    callbacks: list[Any] = [outcome, EpochTensorBoard(), *s.callbacks]
    if s.on_progress and not is_client():
        callbacks.append(ProgressCallback(s.on_progress, s.progress_every_s))
    if isinstance(sched, ResumableASHA):
        callbacks.append(SchedulerState(sched))
    if s.mlflow is not None:
        callbacks.append(mlflow_callback(s.mlflow))
    tuner = tune.Tuner(
        _trainable(s),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=s.metric,
            mode=s.mode,
            num_samples=s.num_samples,
            search_alg=search_alg,
            scheduler=sched,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=s.name,
            storage_path=str(s.storage),
            verbose=0,
            progress_reporter=None,
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
        ),
    )
    with batching():
        tuner.fit()
    _raise_if_interrupted(outcome)


def _raise_if_interrupted(outcome: Outcome | None) -> None:
    if outcome is not None and outcome.unfinished:
        raise KeyboardInterrupt(f"{outcome.unfinished} trials unfinished")


def _join(storage: str | Path, name: str) -> str:
    return str(storage).rstrip("/") + "/" + name


def can_resume_round(storage: str | Path, name: str) -> bool:
    """Whether ``storage/name`` holds a Tune experiment that :func:`resume_round` can continue."""
    try:
        return bool(tune.Tuner.can_restore(_join(storage, name)))
    except Exception:  # an unreadable or foreign folder: nothing to restore
        return False


def resume_round(s: RoundSettings) -> None:
    """Continue an interrupted round from its saved state: finished trials stay finished,
    unfinished and errored ones go on from their last checkpoints, the searcher and ASHA's
    rung records are restored. ``s`` must describe the same round as at its start (its
    trainable and data are handed in again: Tune saves neither); its search space and
    scheduler come from the saved state.

    The saved state (``tuner.pkl``, the experiment and callback snapshots) is unpickled:
    run only on run directories from a trusted source.
    """
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
    with batching():
        tuner.fit()
    _raise_if_interrupted(outcome)
