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
from tuner.spec import Sweep, from_dict
from tuner.storage import RunStore, check_storage

EXPORT_FILE = "best.yaml"
RESUME_WARNING = ("a run directory holds pickled state (Ray Tune's tuner.pkl and experiment snapshots) that "
                  "resuming unpickles: resume only runs from a trusted source")


@dataclass
class RunSummary:
    """What a finished sweep produced."""

    run_dir: Path  # the local run directory (a URI run's local mirror)
    export_path: Path | None
    run: Run
    wall_s: float
    location: str = ""  # the run directory as the user names it: the path, or the URI

    def __post_init__(self) -> None:
        self.location = self.location or str(self.run_dir)


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
    """``storage/name``, or ``storage/name-2``, ``-3``... when that already holds a run
    (a local ``storage``; see :class:`tuner.storage.RunStore` for URIs)."""
    return RunStore.create(storage, name).local


def check_address(address: str | None) -> str | None:
    """``--address``: ``auto``, ``HOST:PORT`` or ``ray://HOST[:PORT]`` (None: a local instance).

    Raises:
        InputError: any other form.
    """
    if address is None:
        return None
    import re

    if address == "auto" or re.fullmatch(r"ray://[^\s/:]+(:\d{1,5})?/?", address) or \
            re.fullmatch(r"[^\s/:]+:\d{1,5}", address):
        return address
    raise InputError(f"--address: {address!r} must be auto, HOST:PORT or ray://HOST:PORT")


def prepare_data(sweep: Sweep) -> Dataset:
    """Load the sweep's data once, in the driver; a data problem is bad input."""
    try:
        return load_data(sweep.data)
    except DataError as e:
        raise InputError(f"{sweep.source}: data: {e}") from None


def _fits(resources: dict[str, Any], cpu: float, gpu: float) -> bool:
    return float(resources.get("CPU", 0)) >= cpu and float(resources.get("GPU", 0)) >= gpu


def check_resources(sweep: Sweep, nodes: list[dict[str, Any]],
                    node_types: list[dict[str, Any]] | None = None) -> str | None:
    """Fail at once when no node can ever hold one trial, instead of pending forever.

    A trial fits a live node, or a node type the cluster's autoscaler reports it can start
    (``node_types``, see :func:`tuner.backend.autoscaler_node_types`): then the sweep goes
    on and the returned note says its trials wait for that node. Otherwise (no autoscaler
    reports a fitting type) it is bad input.

    Raises:
        InputError: naming ``resources.gpu`` or ``resources.cpu`` and what the cluster has.
    """
    cpu, gpu = sweep.resources.cpu, sweep.resources.gpu
    if any(_fits(n["resources"], cpu, gpu) for n in nodes):
        return None
    types = [t for t in node_types or [] if _fits(t["resources"], cpu, gpu)]
    if types:
        return (f"no node of the cluster fits one trial ({cpu:g} CPU, {gpu:g} GPU) yet: trials wait for the "
                f"autoscaler to start a {' or '.join(t['name'] for t in types)} node")
    pool = [n["resources"] for n in nodes] + [t["resources"] for t in node_types or []]
    have_gpu = max((float(r.get("GPU", 0)) for r in pool), default=0)
    have_cpu = max((float(r.get("CPU", 0)) for r in pool), default=0)
    scope = "no node of this cluster (nor a node type its autoscaler reports)" if node_types else \
        "no node of this cluster"
    if gpu > have_gpu:
        raise InputError(f"{sweep.source}: resources.gpu: {gpu:g} per trial, but {scope} has "
                         f"{'a GPU' if have_gpu == 0 else f'{gpu:g} GPUs (most: {have_gpu:g})'}")
    raise InputError(f"{sweep.source}: resources.cpu: {cpu:g} per trial, but the largest node has {have_cpu:g} CPUs")


def run_sweep(sweep: Sweep, storage: str | Path = "runs", address: str | None = None,
              write: Callable[[str], None] = print, num_cpus: int | None = None,
              progress_every_s: float = 5.0, mlflow_uri: str | None = None,
              mlflow_experiment: str | None = None) -> RunSummary:
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
        RunError: the run itself failed.
        KeyboardInterrupt: Ctrl-C; the run is marked ``interrupted`` and can be resumed.
    """
    from tuner import backend

    started = time.monotonic()
    storage = check_storage(storage)
    address = check_address(address)
    if mlflow_uri is not None:
        tracking.require_mlflow()
    data = prepare_data(sweep)
    resources = backend.connect(address, num_cpus=num_cpus)
    note = check_resources(sweep, backend.cluster_nodes(), backend.autoscaler_node_types())
    store = RunStore.create(storage, sweep.name)
    run_dir = store.local
    tracker = None
    if mlflow_uri is not None:
        tracker = tracking.start(mlflow_uri, mlflow_experiment or sweep.name, run_dir.name,
                                 {"tuner.run_dir": store.location, "tuner.sweep_sha256": sweep.sha256})
    store.mkdir()
    write_yaml(run_dir / SWEEP_FILE, sweep.to_dict())
    meta: dict[str, Any] = {
        "name": sweep.name, "status": "running", "created": _now(), "finished": None,
        "location": store.location,
        "cluster": {"address": address or "local", **resources},
        "provenance": {"sweep_file": str(Path(sweep.source).resolve()) if sweep.source != "<dict>" else None,
                       "sweep_sha256": sweep.sha256, "git_commit": git_commit(sweep.source)
                       if sweep.source != "<dict>" else None,
                       "data": data.fingerprint(), "versions": versions(), "argv": sys.argv},
        "rounds": [],
    }
    if tracker is not None:
        meta["provenance"]["mlflow"] = tracker.to_dict()
    _save_meta(store, meta)
    store.push(SWEEP_FILE)
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
    write(f"run directory: {store.location}")
    _notes(store, address, note, write)
    if sweep.train.get("amp") and sweep.resources.gpu == 0:
        write("warning: train.amp: mixed precision needs a GPU and this sweep asks for none (resources.gpu: 0): "
              "ignored, trials train in float32")
    _run_guarded(lambda: run_rounds(sweep, run_dir, meta, data, write=write, progress_every_s=progress_every_s,
                                    store=store, tracker=tracker), store, meta, write, tracker)
    return _finish(store, meta, started, tracker)


def _notes(store: RunStore, address: str | None, note: str | None, write: Callable[[str], None]) -> None:
    if note:
        write(note)
    if address is not None and address.startswith("ray://"):
        write("Ray Client: Tune runs on the head node; progress is not streamed here (the summary comes at the end)")
        if store.uri is None:
            write(f"Ray Client: the head node writes the rounds to {store.local} on its own disk: use a "
                  "--storage URI or a mount shared by this machine and the head")


def _save_meta(store: RunStore, meta: dict[str, Any]) -> None:
    write_json(store.local / RUN_FILE, meta)
    store.push(RUN_FILE)


def _run_guarded(body: Callable[[], None], store: RunStore, meta: dict[str, Any],
                 write: Callable[[str], None], tracker: tracking.SweepTracking | None = None) -> None:
    """Run the rounds; record an interruption or a failure in ``run.json`` before passing it on."""
    try:
        body()
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        _save_meta(store, meta)
        _close(tracker, "KILLED")
        write(f"interrupted: the run's state is saved; continue it with: tuner resume {store.location}")
        raise
    except Exception as e:
        meta["status"] = "failed"
        meta["error"] = f"{type(e).__name__}: {e}"
        _save_meta(store, meta)
        _close(tracker, "FAILED")
        raise RunError(f"the run failed: {type(e).__name__}: {e}") from e


def _finish(store: RunStore, meta: dict[str, Any], started: float,
            tracker: tracking.SweepTracking | None = None) -> RunSummary:
    meta.update(status="done", finished=_now())
    meta.pop("error", None)
    _save_meta(store, meta)
    run = load_run(store.local)
    export_path = None
    if run.ranked():
        export_path = export_mod.write(export_mod.build(run), store.local / EXPORT_FILE)
        store.push(EXPORT_FILE)
    if tracker is not None:
        best = run.ranked()[:1]
        tracker.finish("FINISHED", export_path, {f"best_{run.metric}": best[0].score(run.metric)} if best else {})
    return RunSummary(store.local, export_path, run, time.monotonic() - started, store.location)


def resume_sweep(run_dir: str | Path, address: str | None = None, write: Callable[[str], None] = print,
                 num_cpus: int | None = None, progress_every_s: float = 5.0) -> RunSummary:
    """Finish an interrupted run (Ctrl-C, a killed driver, a failure): rounds already done
    are kept; the round that was running goes on from its saved state (finished trials are
    not re-run, unfinished ones continue from their last checkpoints, the searcher and
    ASHA's rung records are restored); later rounds run as usual. The data is loaded again
    from the run's ``sweep.yaml`` and must be the same (its fingerprint is checked).

    The run directory holds pickled state that resuming unpickles: resume only runs from a
    trusted source.

    Raises:
        InputError: not a run directory, already done, other data, or no node fits.
        RunError: the run itself failed.
    """
    from tuner import backend

    started = time.monotonic()
    address = check_address(address)
    store = RunStore.open(run_dir)
    run = load_run(store.local)
    meta = run.meta
    if meta.get("status") == "done":
        raise InputError(f"{run_dir}: the run is done already; nothing to resume")
    sweep = from_dict(run.sweep, source=str(store.local / SWEEP_FILE))
    data = prepare_data(sweep)
    saved = (meta.get("provenance") or {}).get("data") or {}
    now = data.fingerprint()["sha256"]
    if saved.get("sha256") and saved["sha256"] != now:
        raise InputError(f"{store.local / SWEEP_FILE}: data: the data set differs from the one this run started "
                         f"with (sha256 {now[:12]} vs {saved['sha256'][:12]})")
    resources = backend.connect(address, num_cpus=num_cpus)
    note = check_resources(sweep, backend.cluster_nodes(), backend.autoscaler_node_types())
    rounds = sorted(meta.get("rounds", []), key=lambda r: int(r["index"]))
    unfinished = next((r for r in rounds if r.get("status") != "done"), None)
    start = int(unfinished["index"]) if unfinished else len(rounds)
    meta.update(status="running", resumed=[*meta.get("resumed", []), _now()])
    meta.setdefault("location", store.location)
    write(f"resuming {meta.get('name', sweep.name)} at round {start + 1}/{round_count(sweep)} on "
          f"{resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs")
    write(f"run directory: {store.location}")
    write(f"note: {RESUME_WARNING}")
    _notes(store, address, note, write)
    _save_meta(store, meta)

    def body() -> None:
        restore = unfinished is not None and backend.can_resume_round(store.tune_storage, unfinished["dir"])
        run_rounds(sweep, store.local, meta, data, start=start, write=write, progress_every_s=progress_every_s,
                   store=store, restore=restore)

    _run_guarded(body, store, meta, write)
    return _finish(store, meta, started)


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
               tracker: tracking.SweepTracking | None = None, store: RunStore | None = None,
               restore: bool = False) -> None:
    """Run rounds ``start..`` of ``sweep`` into ``run_dir``, recording each in ``meta``
    (``run.json``): its seed (``search.seed + index``), trials, ranges and best. With a
    ``tracker``, each trial is also an MLflow run under the sweep's.

    ``store`` says where the rounds go when the run directory is a URI (``run_dir`` is then
    its local mirror); ``restore`` continues round ``start`` from its saved state instead
    of starting it afresh (:func:`resume_sweep`)."""
    from tuner import backend, trial

    store = store or RunStore(run_dir)

    n = round_count(sweep)
    search_data = data.without_test()
    for index in range(start, n):
        resuming = restore and index == start
        old = next((x for x in meta["rounds"] if x["index"] == index), None)
        if resuming and old is not None:  # the ranges it was started with (refine rounds depend on results)
            params = [Parameter.from_dict(path, d) for path, d in old["parameters"].items()]
        else:
            params = round_parameters(sweep, run_dir, index)
        first = index == 0
        num_samples = sweep.search.num_samples if first else sweep.search.refine.num_samples  # type: ignore[union-attr]
        r: dict[str, Any] = {"index": index, "dir": f"round-{index}", "seed": sweep.search.seed + index,
                             "num_samples": num_samples, "parameters": {p.path: p.to_dict() for p in params},
                             "status": "running", "started": old["started"] if resuming and old else _now()}
        meta["rounds"] = [x for x in meta["rounds"] if x["index"] != index] + [r]
        _save_meta(store, meta)
        if n > 1:
            write(f"round {index + 1}/{n}: {num_samples} trials, seed {r['seed']}, ranges:")
            for line in describe_ranges(params):
                write(line)
        progress = Progress(sweep.metric, sweep.mode, int(sweep.train["epochs"]), label=f"round {index + 1}/{n}",
                            write=write)
        settings = backend.RoundSettings(
            storage=store.tune_storage, name=r["dir"], trainable=trial.run_trial,
            trainable_args={"base": sweep.base_config(), "data": search_data},
            params=params, method=sweep.search.method, num_samples=num_samples,
            seed=r["seed"], metric=sweep.metric, mode=sweep.mode,
            scheduler=backend.scheduler(sweep.scheduler.name, int(sweep.train["epochs"]),
                                        sweep.scheduler.grace_period, sweep.scheduler.reduction_factor,
                                        sweep.scheduler.brackets),
            cpu=sweep.resources.cpu, gpu=sweep.resources.gpu, max_failures=sweep.max_failures,
            max_concurrent=sweep.search.max_concurrent, on_progress=progress.update,
            progress_every_s=progress_every_s, mlflow=tracker.target(index) if tracker else None)
        try:
            if resuming:
                write(f"round {index + 1}/{n}: continuing from its saved state")
                backend.resume_round(settings)
            else:
                backend.run_round(settings)
        finally:
            store.pull(r["dir"])  # a URI run: this round's results into the local mirror
        ranked = load_run(run_dir).ranked(rounds=[index])
        r.update(status="done", finished=_now())
        if ranked:
            best = ranked[0]
            r["best"] = {"trial": best.trial_id, "score": best.score(sweep.metric), "params": best.params}
            if n > 1:
                params_text = ", ".join(f"{k}={_fmt(v)}" for k, v in export_mod.ordered(best.params, sweep.to_dict()).items())
                write(f"round {index + 1}/{n} best {sweep.metric} {best.score(sweep.metric):.4f}: {params_text}")
        _save_meta(store, meta)


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
    lines.append(f"run directory: {summary.location}")
    if summary.export_path:
        where = summary.export_path if summary.location == str(summary.run_dir) else \
            f"{summary.location.rstrip('/')}/{summary.export_path.name} (local copy: {summary.export_path})"
        lines.append(f"exported best config: {where}")
    return lines


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
