"""Checkpoint cost: a trial checkpointing every epoch (before) vs every 10 seconds (now).

The performance change this measures: ``tuner.trial.run_trial`` used to save its whole
training state with every report; it now does so once ``CHECKPOINT_EVERY_S`` (10 s) have
passed since the last checkpoint (a restored trial still continues from its last one). Both
ways run the same round of few-second trials through the project's own path
(``tuner.backend.run_round`` with ``tuner.trial.run_trial``, ``checkpoint_every_s`` 0 or the
default), alternated A B A B on one Ray instance so the machine's noise hits both alike.

Reported for each: the round's wall time, Σ(trial compute)/CPUs and their ratio (the
efficiency), what a report costs the trial (time between reports minus the epoch's own
time), and the checkpoints taken; then the wall-time ratio of the two ways.

Full size: 2 × 2 rounds of 20 trials × 60 epochs of a BN-MLP [256, 256] on MNIST-1D (3-6 s a
trial here). Quick: 1 × 2 rounds of 2 trials × 3 epochs.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import common
from benchmarks.common import Context
from benchmarks.orchestration import sweep as orchestration_sweep

WAYS = {"every epoch (before)": 0.0, "every 10 s (now)": None}


def run(ctx: Context) -> dict[str, Any]:
    from tuner import backend, trial
    from tuner.progress import Progress
    from tuner.results import load_trials
    from tuner.runner import prepare_data
    from tuner.spec import from_dict

    repeats, trials, epochs = (1, 2, 3) if ctx.quick else (2, 20, 60)
    cpus = float(common.ensure_ray().get("CPU", 1))
    sweep = from_dict(orchestration_sweep(trials, epochs))
    data = prepare_data(sweep).without_test()
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for rep in range(repeats):
        for i, (way, every) in enumerate(WAYS.items()):
            args = {"base": sweep.base_config(), "data": data}
            if every is not None:
                args["checkpoint_every_s"] = every
            storage = ctx.storage(f"round-{rep}-way-{i}")
            progress = Progress("val_acc", "max", epochs, label=way, write=lambda line: None)
            start = time.monotonic()
            backend.run_round(backend.RoundSettings(
                storage=storage, name="round-0", trainable=trial.run_trial, trainable_args=args,
                params=sweep.search.parameters, method="random", num_samples=trials, seed=0, metric="val_acc",
                mode="max", scheduler=backend.scheduler("none", epochs, 1, 3, 1), cpu=1, gpu=0, max_failures=0,
                on_progress=progress.update))
            wall = time.monotonic() - start
            records = load_trials(storage / "round-0", 0, epochs)
            summary = _Summary(records)
            compute = common.compute_s(summary)
            overhead = common.report_overhead(summary)
            row = {"wall_s": wall, "compute_s": compute, "lower_bound_s": compute / cpus,
                   "efficiency": compute / cpus / wall, "report_overhead": overhead}
            runs[way].append(row)
            ctx.say(f"{way:<21} round {rep + 1}: wall {wall:5.1f}s, lower bound {compute / cpus:5.1f}s -> efficiency "
                    f"{row['efficiency']:.2f}; a report costs {overhead['median_s'] * 1000:.1f} ms (median epoch "
                    f"{overhead['median_epoch_s'] * 1000:.0f} ms); {overhead['checkpoints']} checkpoints")
    summary_rows = {}
    for way, rows in runs.items():
        summary_rows[way] = {"wall_s": common.mean_std([r["wall_s"] for r in rows]),
                             "efficiency": common.mean_std([r["efficiency"] for r in rows]),
                             "report_overhead_ms": common.mean_std([r["report_overhead"]["median_s"] * 1000
                                                                    for r in rows])}
    before, now = (summary_rows[w] for w in WAYS)
    ratio = before["wall_s"][0] / now["wall_s"][0]
    ctx.say(f"mean wall before / now: {ratio:.2f}; efficiency before {common.pm([r['efficiency'] for r in runs[list(WAYS)[0]]], 2)}, "
            f"now {common.pm([r['efficiency'] for r in runs[list(WAYS)[1]]], 2)}")
    _plot(ctx, runs)
    return {"sizes": {"repeats": repeats, "trials": trials, "epochs": epochs}, "cpus": cpus, "runs": runs,
            "summary": summary_rows, "wall_ratio_before_to_now": ratio}


class _Summary:
    """The little of a ``RunSummary`` that ``common.compute_s``/``report_overhead`` read."""

    def __init__(self, trials: list[Any]) -> None:
        self.run = type("Run", (), {"trials": trials})()


def _plot(ctx: Context, runs: dict[str, list[dict[str, Any]]]) -> None:
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, (way, rows) in enumerate(runs.items()):
        for j, r in enumerate(rows):
            x = i + (j - (len(rows) - 1) / 2) * 0.25
            a1.bar(x, r["wall_s"], width=0.22, color=["tab:gray", "tab:blue"][i])
            a1.bar(x, r["lower_bound_s"], width=0.1, color="k", alpha=0.35)
            a1.annotate(f"{r['efficiency']:.0%}", (x, r["wall_s"]), ha="center", fontsize=8,
                        textcoords="offset points", xytext=(0, 2))
        a2.bar(i, sum(r["report_overhead"]["median_s"] for r in rows) / len(rows) * 1000, width=0.5,
               color=["tab:gray", "tab:blue"][i])
    a1.set_xticks(range(len(runs)), list(runs), fontsize=8)
    a1.set_ylabel("round wall time (s); dark: Σ compute / CPUs")
    a2.set_xticks(range(len(runs)), list(runs), fontsize=8)
    a2.set_ylabel("ms a report costs the trial (median)")
    fig.suptitle("checkpointing every epoch vs every 10 s")
    common.save(fig, ctx.png())
