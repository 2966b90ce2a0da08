"""A sweep's rounds: the first over the sweep file's ranges, then refine rounds zooming in.

Every round runs in one Ray Tune experiment (``RUN_DIR/trials``) on the same workers: the
searcher (:class:`tuner.ray.search.RoundSearcher`) hands out a round's trials, waits for them to
end, narrows each range to the span of the top-k configurations of all rounds so far, on the
parameter's own scale (:meth:`tuner.space.Parameter.restrict`), and goes on. Each round is
recorded in ``run.json`` as it starts and ends: its seed (``search.seed + index``), trials,
ranges and best.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner import export_file as export_mod
from tuner import tracking
from tuner.errors import InputError, RunError
from tuner.files import write_json
from tuner.journal import Journal
from tuner.models.data import Dataset
from tuner.progress import Progress
from tuner.records import EXPERIMENT_DIR, JOURNAL_FILE, RUN_FILE, RoundRecord, RunMeta, now, round_seed
from tuner.space import Parameter
from tuner.spec import Sweep
from tuner.storage import RunStore


def check_present(store: RunStore) -> None:
    """Raises:
    RunError: the run directory was deleted or moved while the run went on."""
    if not store.present():
        raise RunError(
            f"{store.location}: the run directory disappeared while the run was going (deleted or moved?); "
            "the run stops here"
        )


def save_meta(store: RunStore, meta: RunMeta) -> None:
    """Write ``run.json`` (atomically) and upload it when the run directory is a URI.

    Raises:
        RunError: as :func:`check_present` (nothing is written where the folder was).
    """
    check_present(store)
    write_json(store.local / RUN_FILE, meta.to_dict())
    store.push(RUN_FILE)


def set_aside(store: RunStore, meta: RunMeta, write: Callable[[str], None]) -> None:
    """Before a resume that cannot restore the experiment's saved state starts it over: move
    what the old attempt left (its trials, the journal) to ``abandoned-N/`` in the run
    directory, and forget its rounds, so that the new trials are not mixed with the old.

    Raises:
        InputError: a cloud run whose trials are there (they cannot be moved aside here).
    """
    old = [name for name in (EXPERIMENT_DIR, JOURNAL_FILE) if os.path.lexists(store.local / name)]
    trials = store.local / EXPERIMENT_DIR
    if not old or (old == [EXPERIMENT_DIR] and trials.is_dir() and not any(trials.iterdir())):
        return
    if store.uri is not None:
        raise InputError(
            f"{store.location}: the experiment's saved state cannot be restored, and its trials are there: "
            "start the sweep again with tuner run"
        )
    began = False
    if trials.is_dir():
        with os.scandir(trials) as entries:
            began = any(entry.is_dir(follow_symlinks=False) for entry in entries)
    n = 1
    while os.path.lexists(store.local / f"abandoned-{n}"):
        n += 1
    aside = store.local / f"abandoned-{n}"
    aside.mkdir()
    for name in old:
        os.replace(store.local / name, aside / name)
    meta.rounds = []
    if not began:  # interrupted before its first trial (Ray Tune's snapshot names none)
        write(
            f"note: the run was interrupted before its first trial: it starts over (what Ray Tune saved is in {aside})"
        )
        return
    write(
        f"note: the experiment's saved state cannot be restored (Ray Tune's tuner.pkl or experiment state is "
        f"missing or damaged): the run starts over; the old trials are kept in {aside}"
    )


def plan(sweep: Sweep) -> list[int]:
    """Trials per round: the first round's, then each refine round's (a grid: each point once)."""
    from tuner.space import grid_size

    search = sweep.search
    if search.method == "grid":
        return [grid_size(search.parameters)]
    return [search.round_size(i) for i in range(search.rounds())]


class RoundLog:
    """The driver's record of rounds as the searcher starts and ends them: ``run.json`` and the
    progress lines (a round's ranges when it starts, its best when it ends)."""

    def __init__(
        self,
        sweep: Sweep,
        meta: RunMeta,
        store: RunStore,
        sizes: list[int],
        progress: Progress,
        write: Callable[[str], None],
    ) -> None:
        self.sweep, self.meta, self.store, self.sizes = sweep, meta, store, sizes
        self.progress, self.write = progress, write

    def __call__(self, kind: str, index: int, params: list[Parameter], best: dict[str, Any] | None) -> None:
        n = len(self.sizes)
        old = self.meta.round(index)
        if kind == "start":
            record = RoundRecord(
                index=index,
                dir=EXPERIMENT_DIR,
                seed=round_seed(self.sweep.search.seed, index),
                num_samples=self.sizes[index],
                parameters={p.path: p.to_dict() for p in params},
                status="running",
                started=old.started if old and old.started else now(),
            )
            self.meta.set_round(record)
            self.progress.label = f"round {index + 1}/{n}" if n > 1 else ""
            if n > 1:
                self.write(f"round {index + 1}/{n}: {record.num_samples} trials, seed {record.seed}, ranges:")
                for p in params:
                    self.write(f"  {p.describe()}")
        else:
            record = old or RoundRecord(
                index=index,
                dir=EXPERIMENT_DIR,
                seed=round_seed(self.sweep.search.seed, index),
                num_samples=self.sizes[index],
                parameters={p.path: p.to_dict() for p in params},
            )
            record.status, record.finished, record.best = "done", now(), best
            self.meta.set_round(record)
            if n > 1 and best is not None:
                shown = ", ".join(f"{k}={fmt(v)}" for k, v in export_mod.ordered(best["params"], self.sweep).items())
                self.write(f"round {index + 1}/{n} best {self.sweep.metric} {best['score']:.4f}: {shown}")
            elif n > 1:
                self.write(
                    f"round {index + 1}/{n}: no trial has a finite {self.sweep.metric} (the next round keeps its ranges)"
                )
        save_meta(self.store, self.meta)


def run_rounds(
    sweep: Sweep,
    meta: RunMeta,
    data: Dataset | None,
    write: Callable[[str], None] = print,
    progress_every_s: float = 5.0,
    tracker: tracking.SweepTracking | None = None,
    store: RunStore | None = None,
    restore: bool = False,
) -> None:
    """Run every round of ``sweep`` in one experiment, recording each in ``meta``. With a
    ``tracker``, each trial is also an MLflow run under the sweep's. ``restore`` continues the
    experiment from its saved state (mid-round or between rounds; :func:`tuner.resuming.resume_sweep`).
    """
    from tuner.ray import experiment
    from tuner.ray.callbacks import JournalCallback
    from tuner.ray.cluster import is_client
    from tuner.ray.search import RoundSearcher

    assert store is not None
    sizes = plan(sweep)
    refine = sweep.search.refine
    searcher = RoundSearcher(
        sweep.search.parameters,
        sweep.search.method,
        sizes,
        seed=sweep.search.seed,
        metric=sweep.metric,
        mode=sweep.mode,
        top_k=refine.top_k if refine else 5,
        margin=refine.margin if refine else 0.0,
        max_concurrent=sweep.search.max_concurrent,
    )
    progress = Progress(
        sweep.metric, sweep.mode, sweep.max_t, write=write, rounds=sizes, asha=bool(sweep.scheduler.milestones())
    )
    searcher.hook = RoundLog(sweep, meta, store, sizes, progress, progress.say)  # lines above a live bar
    running = next((r.index for r in meta.rounds if r.status != "done"), None)
    if restore and running is not None and len(sizes) > 1:  # the hook names a round as it starts
        progress.label = f"round {running + 1}/{len(sizes)}"
        progress.round = running
    journal = Journal(
        store.local / JOURNAL_FILE, store.local.name, sweep.metric, sweep.mode, sweep.search.parameters, sweep.max_t
    )
    settings = experiment.ExperimentSettings(
        storage=store.tune_storage,
        name=EXPERIMENT_DIR,
        trial_args={
            "function": sweep.trainer,
            "base": sweep.base_config(),
            "data": data.without_test() if data is not None else None,
            "metric": sweep.metric,
            "mode": sweep.mode,
            "seed": sweep.seed,
            "max_t": sweep.max_t,  # a report beyond the budget ends the function (as ASHA ends it there)
            "trial_timeout": sweep.trial_timeout,
        },
        searcher=searcher,
        num_samples=sum(sizes),
        metric=sweep.metric,
        mode=sweep.mode,
        scheduler=sweep.scheduler,
        cpu=sweep.resources.cpu,
        gpu=sweep.resources.gpu,
        max_failures=sweep.max_failures,
        on_progress=progress.update,
        progress_every_s=progress.interval(progress_every_s),
        mlflow=tracker.target() if tracker else None,
        callbacks=[JournalCallback(journal)],
    )
    meta.timings.setdefault("experiment_started", time.time())
    try:
        if restore:
            write("continuing from the saved state")
        if not is_client():  # through Ray Client, Tune runs on the head: nothing is streamed here
            progress.start()
        failed_alike = (experiment.resume_experiment if restore else experiment.run_experiment)(settings)
        if failed_alike:
            hint = f"; one trial with its traceback: tuner try {sweep.source}" if Path(sweep.source).is_file() else ""
            progress.say(
                f"stopped: the first {failed_alike} trials failed with the same error before any trial reported a "
                f"result, so every trial would{hint}"
            )
    finally:
        meta.timings["experiment_ended"] = time.time()
        progress.close()
        store.pull(EXPERIMENT_DIR)  # a URI run: the results into the local mirror
        store.push(JOURNAL_FILE)
    reconcile(meta, store, searcher.hook)


def reconcile(meta: RunMeta, store: RunStore, hook: Callable[..., None] | None) -> None:
    """Record what the experiment's searcher did that ``meta`` missed, from the state Tune
    saved at the experiment's end: every round through Ray Client (the searcher ran on the
    head node), and a round that ended while no hook was listening (a resumed experiment whose
    trials had all finished before the crash)."""
    from tuner.ray.search import RoundSearcher

    saved = RoundSearcher.saved(store.local / EXPERIMENT_DIR)
    if saved is None or hook is None:
        return

    def missed(kind: str, index: int, params: list[Parameter], best: dict[str, Any] | None) -> None:
        record = meta.round(index)
        if record is None or (kind == "end" and record.status != "done"):
            hook(kind, index, params, best)

    saved.replay(missed)


def fmt(v: Any) -> str:
    """A value as progress lines show it (4 significant digits for a float)."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
