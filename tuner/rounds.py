"""A sweep's rounds: the first over the sweep file's ranges, then refine rounds zooming in.

Each round is one Ray Tune experiment (:mod:`tuner.ray.experiment`) recorded in ``run.json``:
its seed (``search.seed + index``), trials, ranges and best. A refine round's ranges are the
span of the top-k configurations of all rounds so far, on each parameter's own scale
(:meth:`tuner.space.Parameter.restrict`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner import export_file as export_mod
from tuner import tracking
from tuner.files import write_json
from tuner.models.data import Dataset
from tuner.progress import Progress
from tuner.records import RUN_FILE, RoundRecord, RunMeta, now
from tuner.results import load_run
from tuner.space import Parameter, restrict_all
from tuner.spec import Sweep
from tuner.storage import RunStore


def save_meta(store: RunStore, meta: RunMeta) -> None:
    """Write ``run.json`` (atomically) and upload it when the run directory is a URI."""
    write_json(store.local / RUN_FILE, meta.to_dict())
    store.push(RUN_FILE)


def next_ranges(sweep: Sweep, run_dir: Path, meta: RunMeta, index: int) -> list[Parameter]:
    """Round ``index``'s parameters: the file's for round 0; after that, the ranges the
    top-k configurations of all rounds so far span (:meth:`tuner.space.Parameter.restrict`)."""
    params = list(sweep.search.parameters)
    refine = sweep.search.refine
    if index == 0 or refine is None:
        return params
    ranked = load_run(run_dir).ranked(rounds=list(range(index)))
    previous = meta.round(index - 1)
    current = [Parameter.from_dict(path, d) for path, d in previous.parameters.items()] if previous else params
    return restrict_all(current or params, params, [t.params for t in ranked[: refine.top_k]], refine.margin)


def run_rounds(
    sweep: Sweep,
    meta: RunMeta,
    data: Dataset | None,
    start: int = 0,
    write: Callable[[str], None] = print,
    progress_every_s: float = 5.0,
    tracker: tracking.SweepTracking | None = None,
    store: RunStore | None = None,
    restore: bool = False,
) -> None:
    """Run rounds ``start..`` of ``sweep``, recording each in ``meta`` (``run.json``): its seed
    (``search.seed + index``), trials, ranges and best. With a ``tracker``, each trial is also
    an MLflow run under the sweep's.

    ``store`` says where the run directory is (a path, or a URI and its local mirror);
    ``restore`` continues round ``start`` from its saved state instead of starting it afresh
    (:func:`resume_sweep`)."""
    from tuner.ray import experiment

    assert store is not None
    run_dir = store.local
    n = sweep.search.rounds()
    search_data = data.without_test() if data is not None else None
    for index in range(start, n):
        resuming = restore and index == start
        old = meta.round(index)
        if resuming and old is not None:  # the ranges it was started with (refine rounds depend on results)
            params = [Parameter.from_dict(path, d) for path, d in old.parameters.items()]
        else:
            params = next_ranges(sweep, run_dir, meta, index)
        num_samples = sweep.search.round_size(index)
        r = RoundRecord(
            index=index,
            dir=f"round-{index}",
            seed=sweep.search.seed + index,
            num_samples=num_samples,
            parameters={p.path: p.to_dict() for p in params},
            status="running",
            started=old.started if resuming and old else now(),
        )
        meta.set_round(r)
        save_meta(store, meta)
        if n > 1:
            write(f"round {index + 1}/{n}: {num_samples} trials, seed {r.seed}, ranges:")
            for p in params:
                write(f"  {p.describe()}")
        progress = Progress(sweep.metric, sweep.mode, sweep.max_t, label=f"round {index + 1}/{n}", write=write)
        settings = experiment.RoundSettings(
            storage=store.tune_storage,
            name=r.dir,
            trial_args={
                "function": sweep.trainer,
                "base": sweep.base_config(),
                "data": search_data,
                "metric": sweep.metric,
                "mode": sweep.mode,
                "seed": sweep.seed,
            },
            params=params,
            method=sweep.search.method,
            num_samples=num_samples,
            seed=r.seed,
            metric=sweep.metric,
            mode=sweep.mode,
            scheduler=sweep.scheduler,
            cpu=sweep.resources.cpu,
            gpu=sweep.resources.gpu,
            max_failures=sweep.max_failures,
            max_concurrent=sweep.search.max_concurrent,
            on_progress=progress.update,
            progress_every_s=progress_every_s,
            mlflow=tracker.target(index) if tracker else None,
        )
        try:
            if resuming:
                write(f"round {index + 1}/{n}: continuing from its saved state")
                experiment.resume_round(settings)
            else:
                experiment.run_round(settings)
        finally:
            store.pull(r.dir)  # a URI run: this round's results into the local mirror
        ranked = load_run(run_dir).ranked(rounds=[index])
        r.status, r.finished = "done", now()
        if ranked:
            best = ranked[0]
            r.best = {"trial": best.trial_id, "score": best.score(sweep.metric), "params": best.params}
            if n > 1:
                params_text = ", ".join(f"{k}={fmt(v)}" for k, v in export_mod.ordered(best.params, sweep).items())
                write(f"round {index + 1}/{n} best {sweep.metric} {best.score(sweep.metric):.4f}: {params_text}")
        save_meta(store, meta)


def fmt(v: Any) -> str:
    """A value as progress lines show it (4 significant digits for a float)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
