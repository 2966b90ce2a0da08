"""Running a sweep: data once, Ray, each round of trials, then the export.

    summary = run_sweep(load_sweep("sweeps/quickstart.yaml"), storage="runs")

The order matters for bad input: the data is loaded and the cluster checked before
anything is written, so a sweep that cannot run leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from models.data import DataError, Dataset
from models.data import load as load_data
import tuner.export_file as export_mod
from tuner import tracking
from tuner.errors import InputError, RunError
from tuner.files import write_json, write_yaml
from tuner.progress import Progress
from tuner.results import RUN_FILE, SWEEP_FILE, Run, load_run
from tuner.refine import describe as describe_ranges
from tuner.refine import next_parameters
from tuner.space import Parameter
from tuner.spec import Sweep

EXPORT_FILE = "best.yaml"


@dataclass
class RunSummary:
    """What a finished sweep produced."""

    run_dir: Path
    export_path: Path | None
    run: Run
    wall_s: float


def versions() -> dict[str, str]:
    """Versions of python, torch, ray, numpy and tuner."""
    import numpy
    import ray
    import torch

    from tuner import __version__

    return {"python": platform.python_version(), "torch": str(torch.__version__), "ray": str(ray.__version__),
            "numpy": str(numpy.__version__), "tuner": str(__version__)}


def git_commit(path: str | Path) -> str | None:
    """The commit of the git repository holding ``path`` (None outside one), ``+dirty`` when
    the file has uncommitted changes."""
    folder = Path(path).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", str(Path(path).resolve())], cwd=folder,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def new_run_dir(storage: str | Path, name: str) -> Path:
    """``storage/name``, or ``storage/name-2``, ``-3``... when that already holds a run."""
    base = Path(storage).expanduser().resolve() / name
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{name}-{n}")
    return candidate


def prepare_data(sweep: Sweep) -> Dataset:
    """Load the sweep's data once, in the driver; a data problem is bad input."""
    try:
        return load_data(sweep.data)
    except DataError as e:
        raise InputError(f"{sweep.source}: data: {e}") from None


def check_resources(sweep: Sweep, nodes: list[dict[str, Any]]) -> None:
    """Fail at once when no node can ever hold one trial (instead of pending forever)."""
    cpu, gpu = sweep.resources.cpu, sweep.resources.gpu
    fits = [n for n in nodes if n["resources"].get("CPU", 0) >= cpu and n["resources"].get("GPU", 0) >= gpu]
    if fits:
        return
    have_gpu = max((n["resources"].get("GPU", 0) for n in nodes), default=0)
    have_cpu = max((n["resources"].get("CPU", 0) for n in nodes), default=0)
    if gpu > have_gpu:
        raise InputError(f"{sweep.source}: resources.gpu: {gpu:g} per trial, but no node of this cluster has "
                         f"{'a GPU' if have_gpu == 0 else f'{gpu:g} GPUs (most: {have_gpu:g})'}")
    raise InputError(f"{sweep.source}: resources.cpu: {cpu:g} per trial, but the largest node has {have_cpu:g} CPUs")


def run_sweep(sweep: Sweep, storage: str | Path = "runs", address: str | None = None,
              write: Callable[[str], None] = print, num_cpus: int | None = None,
              progress_every_s: float = 5.0, mlflow_uri: str | None = None,
              mlflow_experiment: str | None = None) -> RunSummary:
    """Run every round of ``sweep`` on Ray and export the best configuration.

    Args:
        sweep: a validated sweep (:func:`tuner.spec.load_sweep`).
        storage: the folder runs go under; the run directory is ``storage/<name>``.
        address: a Ray cluster to join (``auto``, ``HOST:PORT``, ``ray://HOST:10001``);
            None starts a local instance on every core of this machine.
        write: where progress lines go.
        num_cpus: CPUs of the local instance (None: all).
        mlflow_uri: also log to this MLflow tracking store (see :mod:`tuner.tracking`): a
            run per trial, under a parent run for the sweep holding the export.
        mlflow_experiment: the MLflow experiment (default: the sweep's name).

    Raises:
        InputError: the data cannot be loaded, no node fits one trial, or MLflow is missing
            or its store unusable (nothing written).
        RunError: the run itself failed.
    """
    from tuner import backend

    started = time.monotonic()
    if mlflow_uri is not None:
        tracking.require_mlflow()
    data = prepare_data(sweep)
    resources = backend.connect(address, num_cpus=num_cpus)
    check_resources(sweep, backend.cluster_nodes())
    run_dir = new_run_dir(storage, sweep.name)
    tracker = None
    if mlflow_uri is not None:
        tracker = tracking.start(mlflow_uri, mlflow_experiment or sweep.name, run_dir.name,
                                 {"tuner.run_dir": str(run_dir), "tuner.sweep_sha256": sweep.sha256})
    run_dir.mkdir(parents=True)
    write_yaml(run_dir / SWEEP_FILE, sweep.to_dict())
    meta: dict[str, Any] = {
        "name": sweep.name, "status": "running", "created": _now(), "finished": None,
        "cluster": {"address": address or "local", **resources},
        "provenance": {"sweep_file": str(Path(sweep.source).resolve()) if sweep.source != "<dict>" else None,
                       "sweep_sha256": sweep.sha256, "git_commit": git_commit(sweep.source)
                       if sweep.source != "<dict>" else None,
                       "data": data.fingerprint(), "versions": versions(), "argv": sys.argv},
        "rounds": [],
    }
    if tracker is not None:
        meta["provenance"]["mlflow"] = tracker.to_dict()
    write_json(run_dir / RUN_FILE, meta)
    if tracker is not None:
        tracker.log_artifact(run_dir / SWEEP_FILE)
    scheduler_text = ("ASHA (grace %d, reduction %g, max %d epochs)" % (
        sweep.scheduler.grace_period, sweep.scheduler.reduction_factor, sweep.train["epochs"])
        if sweep.scheduler.name == "asha" else f"no early stopping ({sweep.train['epochs']} epochs each)")
    rounds_text = f" (+{round_count(sweep) - 1} refine rounds of {sweep.search.refine.num_samples})" \
        if sweep.search.refine and sweep.search.refine.rounds else ""
    write(f"sweep {sweep.name}: {sweep.search.num_samples} trials{rounds_text}, {sweep.search.method} search, "
          f"{scheduler_text}, "
          f"{resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs")
    write(f"run directory: {run_dir}")
    try:
        run_rounds(sweep, run_dir, meta, data, write=write, progress_every_s=progress_every_s, tracker=tracker)
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        write_json(run_dir / RUN_FILE, meta)
        _close(tracker, "KILLED")
        raise
    except Exception as e:
        meta["status"] = "failed"
        meta["error"] = f"{type(e).__name__}: {e}"
        write_json(run_dir / RUN_FILE, meta)
        _close(tracker, "FAILED")
        raise RunError(f"the run failed: {type(e).__name__}: {e}") from e
    meta.update(status="done", finished=_now())
    write_json(run_dir / RUN_FILE, meta)
    run = load_run(run_dir)
    export_path = None
    if run.ranked():
        export_path = export_mod.write(export_mod.build(run), run_dir / EXPORT_FILE)
    if tracker is not None:
        best = run.ranked()[:1]
        tracker.finish("FINISHED", export_path, {f"best_{run.metric}": best[0].score(run.metric)} if best else {})
    return RunSummary(run_dir, export_path, run, time.monotonic() - started)


def _close(tracker: tracking.SweepTracking | None, status: str) -> None:
    """Close the sweep's MLflow run on the way out of a failed run, never masking its error."""
    if tracker is None:
        return
    try:
        tracker.finish(status)
    except Exception:  # the tracking store may be what failed
        pass


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def round_count(sweep: Sweep) -> int:
    """The first round plus the refine rounds."""
    return 1 + (sweep.search.refine.rounds if sweep.search.refine else 0)


def round_parameters(sweep: Sweep, run_dir: Path, index: int) -> list[Parameter]:
    """Round ``index``'s parameters: the file's for round 0; after that, the ranges the
    top-k configurations of all rounds so far span (:mod:`tuner.refine`)."""
    params = list(sweep.search.parameters)
    if index == 0 or sweep.search.refine is None:
        return params
    refine = sweep.search.refine
    ranked = load_run(run_dir).ranked(rounds=list(range(index)))
    previous = [Parameter.from_dict(path, d) for path, d in _round_meta(run_dir, index - 1)["parameters"].items()]
    return next_parameters(previous or params, params, [t.params for t in ranked[:refine.top_k]], refine.margin)


def _round_meta(run_dir: Path, index: int) -> dict[str, Any]:
    meta = load_run(run_dir).meta
    return next(r for r in meta["rounds"] if r["index"] == index)


def run_rounds(sweep: Sweep, run_dir: Path, meta: dict[str, Any], data: Dataset, start: int = 0,
               write: Callable[[str], None] = print, progress_every_s: float = 5.0,
               tracker: tracking.SweepTracking | None = None) -> None:
    """Run rounds ``start..`` of ``sweep`` into ``run_dir``, recording each in ``meta``
    (``run.json``): its seed (``search.seed + index``), trials, ranges and best. With a
    ``tracker``, each trial is also an MLflow run under the sweep's."""
    from tuner import backend, trial

    n = round_count(sweep)
    search_data = data.without_test()
    for index in range(start, n):
        params = round_parameters(sweep, run_dir, index)
        first = index == 0
        num_samples = sweep.search.num_samples if first else sweep.search.refine.num_samples  # type: ignore[union-attr]
        r: dict[str, Any] = {"index": index, "dir": f"round-{index}", "seed": sweep.search.seed + index,
                             "num_samples": num_samples, "parameters": {p.path: p.to_dict() for p in params},
                             "status": "running", "started": _now()}
        meta["rounds"] = [x for x in meta["rounds"] if x["index"] != index] + [r]
        write_json(run_dir / RUN_FILE, meta)
        if n > 1:
            write(f"round {index + 1}/{n}: {num_samples} trials, seed {r['seed']}, ranges:")
            for line in describe_ranges(params):
                write(line)
        progress = Progress(sweep.metric, sweep.mode, int(sweep.train["epochs"]), label=f"round {index + 1}/{n}",
                            write=write)
        backend.run_round(backend.RoundSettings(
            storage=run_dir, name=r["dir"], trainable=trial.run_trial,
            trainable_args={"base": sweep.base_config(), "data": search_data},
            params=params, method=sweep.search.method, num_samples=num_samples,
            seed=r["seed"], metric=sweep.metric, mode=sweep.mode,
            scheduler=backend.scheduler(sweep.scheduler.name, int(sweep.train["epochs"]),
                                        sweep.scheduler.grace_period, sweep.scheduler.reduction_factor,
                                        sweep.scheduler.brackets),
            cpu=sweep.resources.cpu, gpu=sweep.resources.gpu, max_failures=sweep.max_failures,
            max_concurrent=sweep.search.max_concurrent, on_progress=progress.update,
            progress_every_s=progress_every_s, mlflow=tracker.target(index) if tracker else None))
        ranked = load_run(run_dir).ranked(rounds=[index])
        r.update(status="done", finished=_now())
        if ranked:
            best = ranked[0]
            r["best"] = {"trial": best.trial_id, "score": best.score(sweep.metric), "params": best.params}
            if n > 1:
                params_text = ", ".join(f"{k}={_fmt(v)}" for k, v in export_mod.ordered(best.params, sweep.to_dict()).items())
                write(f"round {index + 1}/{n} best {sweep.metric} {best.score(sweep.metric):.4f}: {params_text}")
        write_json(run_dir / RUN_FILE, meta)


def describe(summary: RunSummary, top: int = 5) -> list[str]:
    """The lines printed when a run ends: counts, the best trials, where things are."""
    run = summary.run
    counts: dict[str, int] = {}
    for t in run.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    epochs = sum(t.epochs for t in run.trials)
    full = len(run.trials) * int(run.sweep["train"]["epochs"])
    lines = [f"done in {summary.wall_s:.0f}s: {len(run.trials)} trials ("
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f"), {epochs} of {full} epochs trained"]
    ranked = run.ranked()
    if ranked:
        lines.append(f"best {run.metric} {ranked[0].score(run.metric):.4f} (trial {ranked[0].trial_id}):")
        for k, v in export_mod.ordered(ranked[0].params, run.sweep).items():
            lines.append(f"  {k}: {_fmt(v)}")
        lines.append(f"top {min(top, len(ranked))}:")
        for t in ranked[:top]:
            params = ", ".join(f"{k.split('.')[-1]}={_fmt(v)}"
                               for k, v in export_mod.ordered(t.params, run.sweep).items())
            lines.append(f"  {t.score(run.metric):.4f}  {t.status:<8} {t.epochs:>3} ep  {params}")
    lines.append(f"run directory: {summary.run_dir}")
    if summary.export_path:
        lines.append(f"exported best config: {summary.export_path}")
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
