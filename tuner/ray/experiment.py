"""Running a sweep's trials as one Ray Tune experiment, and resuming it.

Every round's trials run in one experiment (:class:`tuner.ray.search.RoundSearcher` hands them
out round after round): :func:`tuner.ray.worker.run_trial` with the sweep's function, its base
config and the data (shipped once through the object store), under ASHA or FIFO, with actor
reuse and batched results. Ctrl-C leaves the experiment resumable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray import tune

from tuner.errors import InputError
from tuner.files import NOT_REGULAR
from tuner.progress import TrialEvent
from tuner.ray import logs, tune_patches
from tuner.ray.asha import ResumableASHA, SchedulerState, scheduler
from tuner.ray.batching import batched, batching
from tuner.ray.callbacks import EpochTensorBoard, JournalCallback, ProgressCallback, mlflow_callback
from tuner.ray.cluster import is_client
from tuner.ray.outcome import FirstFailures, Outcome
from tuner.ray.search import RoundSearcher, SearcherLink
from tuner.ray.settings import setting
from tuner.ray.worker import run_trial
from tuner.spec import SchedulerSpec
from tuner.tracking import MlflowTarget

log = logging.getLogger(__name__)


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


@contextlib.contextmanager
def driver_settings(s: ExperimentSettings) -> Iterator[None]:
    """What the driver sets for the length of one experiment, started or resumed: result
    batching, trials created ahead, the trainable looked up once, a trial process that is
    starting kept, no result tables read at the end, no usage tag of its callbacks (which
    imports mlflow where it is installed), trial processes with no runtime environment of their
    own where Tune has none to hand over, the staging folder copied to a local run directory
    whole file by whole file, a restarted trial's history kept where the run directory's copy
    lags, and on a local instance each trial's
    resources from a budget instead of a placement group and no more trial processes starting
    at once than it has cores."""
    with batching(), pending_trials(s), tune_patches.trainable_lookups_cached(), ctrl_c_kept():
        with tune_patches.starting_actors_kept(), tune_patches.budgeted_resources():
            with tune_patches.staggered_starts(), tune_patches.trial_tables_unread():
                with tune_patches.callbacks_untagged(), tune_patches.plain_trial_processes():
                    with tune_patches.whole_file_syncs(), tune_patches.trial_logs_kept():
                        yield


@contextlib.contextmanager
def ctrl_c_kept() -> Iterator[None]:
    """Ctrl-C's handler as it was before the experiment, once it is over. Ray Tune sets its own
    for ``fit`` and leaves it in place after a run that ended by itself: the next Ctrl-C of a
    notebook or script that called ``tuner.run`` only set a flag nobody reads (and a
    SIGTERM, handed to it, was lost)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGINT, before)


@contextlib.contextmanager
def interrupts_seen() -> Iterator[list[Any]]:
    """Within the block, the events Ray Tune's Ctrl-C handler sets, one for each ``fit`` (Tune's
    ``_setup_signal_catching``). A Ctrl-C makes ``fit`` return as if the experiment had ended;
    tuner tells it by the trials it left unfinished, and one that came before the first trial
    was created left none: the run then failed with "no trial produced a result (0 of 0
    trials failed)" instead of being interrupted and resumable."""
    import importlib

    tune_run = importlib.import_module("ray.tune.tune")
    setup = tune_run._setup_signal_catching
    events: list[Any] = []

    def catching() -> Any:
        event = setup()
        events.append(event)
        return event

    with tune_patches.swapped(tune_run, "_setup_signal_catching", catching):
        yield events


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

    from tuner.ray.nodes import trial_slots

    resources = ray.cluster_resources() if ray.is_initialized() else {}
    return trial_slots(s.cpu, s.gpu, resources, s.searcher.max_concurrent, s.num_samples)


def _trainable(s: ExperimentSettings) -> Any:
    function = tune.with_parameters(run_trial, **s.trial_args)
    return tune.with_resources(batched(function, set(s.scheduler.milestones())), {"cpu": s.cpu, "gpu": s.gpu})


def run_experiment(s: ExperimentSettings) -> int:
    """Run every round's trials to completion (ASHA stops some early).

    Returns:
        0, or how many trials had failed alike when the experiment was stopped because its
        first trials all failed with the same error before any reported (:class:`FirstFailures`).

    Raises:
        KeyboardInterrupt: the round was interrupted (Ctrl-C); its state is saved and
            :func:`resume_experiment` continues it.
    """
    tune_patches.snapshot_floor()
    logs.install()  # Ray Tune's loggers, imported by now
    sched = scheduler(s.scheduler)
    outcome, first = Outcome(), FirstFailures()
    callbacks: list[Any] = [outcome, first, SearcherLink(s.searcher), EpochTensorBoard(), *s.callbacks]
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
            stop=first,
        ),
    )
    return _fit(tuner, s, outcome, first)


def _fit(tuner: tune.Tuner, s: ExperimentSettings, outcome: Outcome | None, first: FirstFailures | None) -> int:
    """Run ``tuner`` (started or restored) to its end; returns what :func:`_ended` says of it."""
    with driver_settings(s), interrupts_seen() as interrupts:
        tuner.fit()
    return _ended(outcome, first, any(e.is_set() for e in interrupts))


def _ended(outcome: Outcome | None, first: FirstFailures | None, interrupted: bool = False) -> int:
    """How many trials failed alike when the experiment was stopped for it (0: it was not).

    Raises:
        KeyboardInterrupt: Ctrl-C stopped ``fit`` (``interrupted``), or trials were left
            unfinished otherwise.
    """
    if first is not None and first.tripped:
        return len(first.errors)
    if interrupted:
        raise KeyboardInterrupt("the experiment was interrupted")
    if outcome is not None and outcome.unfinished:
        raise KeyboardInterrupt(f"{outcome.unfinished} trials unfinished")
    return 0


def _join(storage: str | Path, name: str) -> str:
    return str(storage).rstrip("/") + "/" + name


_EMPTY_STATE_BYTES = 1 << 20  # a snapshot of no trial is a few kB (Tune's runner and its stats)


def can_resume(storage: str | Path, name: str) -> bool:
    """Whether ``storage/name`` holds a Tune experiment that :func:`resume_experiment` can continue:
    Tune's saved state, whose newest snapshot names a trial (:func:`_trials_saved`)."""
    from ray.train._internal.storage import get_fs_and_path

    path = _join(storage, name)
    try:
        fs, fs_path = get_fs_and_path(path)  # once: for an object store, a filesystem made from the URI
        if not tune.Tuner.can_restore(fs_path, storage_filesystem=fs):
            return False
    except Exception:  # an unreadable or foreign folder: nothing to restore
        return False
    return _trials_saved(fs, fs_path)


def _trials_saved(fs: Any, path: str) -> bool:
    """Whether the newest snapshot of the experiment at ``path`` on ``fs`` (a pyarrow filesystem,
    the path without its URI's scheme) names a trial, or cannot be read here (Tune's restore
    then says what is wrong). A Ctrl-C before the first trial was created leaves one that names
    none, or none at all: Tune's restore of it fails (an ``IndexError`` of its controller, or a
    ``ValueError``) and then ran a round of its own beside the searcher's saved state; the round
    is started over instead.

    Raises:
        InputError: the newest snapshot is not a regular file (a pipe: reading it would wait
            for ever)."""
    import json

    import pyarrow.fs
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    try:
        newest = _find_newest_experiment_checkpoint(path, fs)
        if newest is None:
            return False
        if fs.get_file_info(newest).type != pyarrow.fs.FileType.File:  # a pipe would wait for ever, here and in Tune
            raise InputError(f"{newest}: {NOT_REGULAR}")
        with fs.open_input_stream(newest) as f:
            raw = f.read(_EMPTY_STATE_BYTES)
        if len(raw) >= _EMPTY_STATE_BYTES:  # far larger than a snapshot of no trial
            return True
        state = json.loads(raw)
        return not isinstance(state, dict) or state.get("trial_data") != []
    except InputError:
        raise
    except Exception as e:  # not JSON, unreadable: Tune's own restore says it
        log.debug("the experiment state at %s: %s", path, e)
        return True


def resume_experiment(s: ExperimentSettings) -> int:
    """Continue an interrupted round from its saved state: finished trials stay finished,
    unfinished and errored ones go on from their last checkpoints, the searcher and ASHA's
    rung records are restored. ``s`` must describe the same round as at its start (its
    trainable and data are handed in again: Tune saves neither); its search space and
    scheduler come from the saved state. Returns what :func:`run_experiment` returns.

    The saved state (``tuner.pkl``, the experiment and callback snapshots) is unpickled:
    run only on run directories from a trusted source.
    """
    tune_patches.snapshot_floor()
    logs.install()  # Ray Tune's loggers, imported by now
    tuner = tune.Tuner.restore(
        _join(s.storage, s.name), trainable=_trainable(s), resume_unfinished=True, resume_errored=True
    )
    outcome, first = None, None
    local = getattr(tuner, "_local_tuner", None)  # None through Ray Client (the Tuner runs on the head)
    if local is not None:
        for cb in local.get_run_config().callbacks or []:
            if isinstance(cb, ProgressCallback):
                cb.on_step = s.on_progress
                cb.every_s = s.progress_every_s
            elif isinstance(cb, Outcome):
                outcome = cb
            elif isinstance(cb, FirstFailures):
                first = cb
            elif isinstance(cb, JournalCallback):  # the journal of the run directory as it is now
                cb.reattach(s.callbacks)
            elif isinstance(cb, SearcherLink):  # the searcher Tune restored: the driver's hook again
                cb.searcher.hook = s.searcher.hook
    return _fit(tuner, s, outcome, first)
