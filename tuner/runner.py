"""Running a sweep: data once, Ray, each round of trials, then the export.

    summary = run_sweep(load_sweep("sweeps/quickstart.yaml"), storage="runs")

The order matters for bad input: the data is loaded and the cluster checked before
anything is written, so a sweep that cannot run leaves nothing behind. A run in which no
trial produced a result failed (exit 1), with the first error of each kind and where the
full logs are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from tuner import datasets, rounds, signals, startup, tracking
from tuner import export_file as export_mod
from tuner.errors import InputError, RunError, log_bug, message
from tuner.files import write_yaml
from tuner.provenance import git_commit, versions
from tuner.records import (
    EXPERIMENT_DIR,
    EXPORT_FILE,
    RUN_FILE,
    SWEEP_FILE,
    TIMEOUT_FILE,
    RunMeta,
    RunStatus,
    TrialStatus,
    now,
)
from tuner.results import load_run, timeout_reason
from tuner.spec import Sweep
from tuner.storage import RunStore, check_storage
from tuner.summary import RunSummary, describe, failures  # noqa: F401 (the runner's public names)


def new_run_dir(storage: str | Path, name: str) -> Path:
    """``storage/name``, or ``storage/name-2``, ``-3``... when that already holds a run
    (a local ``storage``; see :class:`tuner.storage.RunStore` for URIs)."""
    return RunStore.create(storage, name).local


def run_sweep(
    sweep: Sweep,
    storage: str | Path = "runs",
    address: str | None = None,
    write: Callable[[str], None] = print,
    num_cpus: int | None = None,
    progress_every_s: float = 5.0,
    mlflow_uri: str | None = None,
    mlflow_experiment: str | None = None,
) -> RunSummary:
    """Run every round of ``sweep`` on Ray and export the best configuration.

    Args:
        sweep: a validated sweep (:func:`tuner.spec.load_sweep`).
        storage: what runs go under: a local folder (a mount shared by every node, for a
            cluster) or a URI (``s3://bucket/runs``, ``gs://...``, ``file:///...``); the run
            directory is ``storage/<name>``.
        address: a Ray cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:10001``);
            None starts a local instance on every core of this machine.
        write: where progress lines go.
        num_cpus: CPUs of the local instance (None: all).
        mlflow_uri: also log to this MLflow tracking store (see :mod:`tuner.tracking`): a
            run per trial, under a parent run for the sweep holding the export.
        mlflow_experiment: the MLflow experiment (default: the sweep's name).

    Raises:
        InputError: bad ``storage``/``address``, the data cannot be loaded, no node fits one
            trial, or MLflow is missing or its store unusable (nothing written).
        RunError: the run itself failed (no trial produced a result, among others).
        KeyboardInterrupt: Ctrl-C; the run is marked ``interrupted`` and can be resumed.
    """
    from tuner.ray.joining import resolve

    started = time.monotonic()
    storage = check_storage(storage)
    asked = address
    address = resolve(address, num_cpus)
    if mlflow_uri is not None:
        tracking.check_uri(mlflow_uri)
    startup.preload()
    write(startup.starting_line(address, kept=asked is None, num_cpus=num_cpus))
    timings = {"process": startup.process_start(), "sweep_loaded": time.time()}
    data, resources, note = startup.prepare(sweep, address, num_cpus, timings)
    store, lock = RunStore.claim(storage, sweep.name)  # this driver's, until it ends
    try:
        run_dir = store.local
        tracker = None
        if mlflow_uri is not None:
            tracker = tracking.start(
                mlflow_uri,
                mlflow_experiment or sweep.name,
                run_dir.name,
                {"tuner.run_dir": store.location, "tuner.sweep_sha256": sweep.sha256},
            )
        try:  # the run's first writes: a store that fails here leaves no half-made run at the URI
            store.mkdir()
            write_yaml(run_dir / SWEEP_FILE, sweep.to_dict())
            from_file = sweep.source if Path(sweep.source).is_file() else None
            meta = RunMeta(
                name=sweep.name,
                location=store.location,
                cluster={"address": address or "local", **resources},
                provenance={
                    "sweep_file": str(Path(from_file).resolve()) if from_file else None,
                    "sweep_sha256": sweep.sha256,
                    "git_commit": git_commit(from_file) if from_file else None,
                    "overrides": dict(sweep.overrides),
                    "data": datasets.fingerprint(data),
                    "function": sweep.trainer,
                    "versions": versions(),
                    "argv": list(sys.argv),
                },
                timings=timings,
            )
            if tracker is not None:
                meta.provenance["mlflow"] = tracker.to_dict()
            rounds.save_meta(store, meta)
            store.push(SWEEP_FILE)
        except Exception:
            store.discard((RUN_FILE, SWEEP_FILE))
            raise
        if tracker is not None:
            tracker.log_artifact(run_dir / SWEEP_FILE)
        refine = sweep.search.refine
        rounds_text = f" (+{refine.rounds} refine rounds of {refine.num_samples})" if refine and refine.rounds else ""
        trainer = "the built-in BN trainer" if sweep.builtin else sweep.function
        write(
            f"sweep {sweep.name}: {rounds.plan(sweep)[0]} trials{rounds_text} of {trainer}, {sweep.search.method} "
            f"search, {sweep.scheduler.describe()}, {resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs"
        )
        write(f"run directory: {store.location}")
        write_notes(store, address, note, write)
        if sweep.train.get("amp") and sweep.resources.gpu == 0:
            write(
                "warning: train.amp: mixed precision needs a GPU and this sweep asks for none (resources.gpu: 0): "
                "ignored, trials train in float32"
            )
        run_guarded(
            lambda: rounds.run_rounds(
                sweep, meta, data, write=write, progress_every_s=progress_every_s, store=store, tracker=tracker
            ),
            store,
            meta,
            write,
            tracker,
        )
        return finish(store, meta, started, tracker)
    except BaseException as e:  # what the run directory is, for --json
        e.tuner_run_dir = store.location  # type: ignore[attr-defined]
        raise
    finally:
        store.release(lock)


def write_notes(store: RunStore, address: str | None, note: str | None, write: Callable[[str], None]) -> None:
    """Say what the user should know of where the run goes: ``note`` (from the node check), and
    what Ray Client changes."""
    if note:
        write(note)
    if address is not None and address.startswith("ray://"):
        write("Ray Client: Tune runs on the head node; progress is not streamed here (the summary comes at the end)")
        if store.uri is None:
            write(
                f"Ray Client: the head node writes the rounds to {store.local} on its own disk: use a "
                "--storage URI or a mount shared by this machine and the head"
            )


def run_guarded(
    body: Callable[[], None],
    store: RunStore,
    meta: RunMeta,
    write: Callable[[str], None],
    tracker: tracking.SweepTracking | None = None,
) -> None:
    """Run the rounds; record an interruption (Ctrl-C, SIGTERM, SIGHUP) or a failure in
    ``run.json`` before passing it on."""
    try:
        with signals.as_interrupt():
            body()
    except KeyboardInterrupt:
        meta.status = RunStatus.INTERRUPTED
        rounds.save_meta(store, meta)
        _close(tracker, "KILLED")
        write(f"interrupted: the run's state is saved; continue it with: tuner resume {store.location}")
        raise
    except (InputError, RunError):
        meta.status = RunStatus.FAILED
        rounds.save_meta(store, meta)
        _close(tracker, "FAILED")
        raise
    except Exception as e:  # not the user's input nor a trial's failure: a bug, its traceback logged
        lines = [line for line in message(e).strip().splitlines() if line.strip()] or [""]
        said = (lines[-1] if lines[0].startswith("Traceback") else lines[0]).strip()[:300]  # TuneError: a traceback
        meta.status, meta.error = RunStatus.FAILED, f"{type(e).__name__}: {said}"
        rounds.save_meta(store, meta)
        _close(tracker, "FAILED")
        path = log_bug(e, "tuner run")
        where = f"the traceback is in {path}" if path else "no log could be written"
        raise RunError(f"the run failed: {type(e).__name__}: {said} ({where})") from e


def finish(store: RunStore, meta: RunMeta, started: float, tracker: tracking.SweepTracking | None = None) -> RunSummary:
    """End a run whose rounds are over: ``run.json`` ``done`` and the export, or ``failed``.

    Raises:
        RunError: no trial has a finite score (none reported, or all diverged), or the run
            directory disappeared.
    """
    rounds.check_present(store)
    run = load_run(store.local, ended=True)  # the rounds are over, though run.json says running until saved
    errors = failures(run)
    meta.failures = errors
    run.meta = meta
    if not any(abs(t.score(run.metric) or 0.0) < float("inf") for t in run.ranked()):  # no finite score to export
        meta.status, meta.finished = RunStatus.FAILED, now()
        meta.error = f"no trial has a finite {run.metric}; nothing to export" if run.ranked() else ""
        meta.error = meta.error or "no trial produced a result"
        rounds.save_meta(store, meta)
        _close(tracker, "FAILED")
        failed = sum(t.status == TrialStatus.ERROR for t in run.trials)
        diverged = 0 if failed else sum(t.status == TrialStatus.DIVERGED for t in run.trials)
        logs = (
            f"full logs: {store.location}/{EXPERIMENT_DIR}/*/error.txt"
            if failed
            else f"the trials' folders: {store.location}/{EXPERIMENT_DIR}/"
        )
        hung = sum(
            t.status == TrialStatus.ERROR and bool(t.path) and timeout_reason(Path(t.path)) is not None
            for t in run.trials
        )
        if hung:  # Ray's error.txt of a process tuner ended says only that it died (and guesses why)
            where = f"why {'each was' if hung > 1 else 'it was'} stopped: {store.location}/{EXPERIMENT_DIR}/*/{TIMEOUT_FILE}"
            logs = where if hung == failed else f"{logs}; {where}"
        what = "diverged" if diverged else "failed"
        raise RunError(
            f"the run failed: {meta.error} ({diverged or failed} of {len(run.trials)} trials {what})", [*errors, logs]
        )
    meta.status, meta.finished, meta.error = RunStatus.DONE, now(), None
    rounds.save_meta(store, meta)
    target = store.local / EXPORT_FILE  # a resumed run's export keeps a retest made of it
    export_path = export_mod.write(export_mod.keep_retest(export_mod.build(run), target), target)
    store.push(EXPORT_FILE)
    if tracker is not None:
        best = run.ranked()[0]
        tracker.finish("FINISHED", export_path, {f"best_{run.metric}": best.score(run.metric) or 0.0})
    return RunSummary(store.local, export_path, run, time.monotonic() - started, store.location)


def _close(tracker: tracking.SweepTracking | None, status: str) -> None:
    """Close the sweep's MLflow run on the way out of a failed run, never masking its error."""
    if tracker is None:
        return
    try:
        tracker.finish(status)
    except Exception:  # the tracking store may be what failed
        pass
