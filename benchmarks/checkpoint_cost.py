"""Checkpoint cost: a trial checkpointing every epoch (before) vs by its cost (now).

The performance change this measures: ``tuner.trial.run_trial`` used to save its whole
training state with every report; it now does so once the training since its last checkpoint
is 25 times what that checkpoint cost (``tuner.trial.CheckpointPolicy``; a restored trial
still continues from its last one). Both ways run the same round of few-second trials through
the project's own path (``tuner.ray.experiment.run_experiment`` with the built-in trial function,
``checkpoint_every_s=0`` or the default), alternated A B A B on one Ray instance so the
machine's noise hits both alike.

Reported for each: the round's wall time, Σ(trial compute)/CPUs and their ratio (the
efficiency), the checkpoints taken, and what the trial loses per epoch outside its epochs'
own work. For that last figure the trainable is :func:`timed_trial`, which wraps
``run_trial`` and records when it started and returned: (its wall time − Σ epoch_s) / epochs,
over every trial but each worker's first (whose set-up imports torch's compiler stack once,
~2 s here). That covers the time inside each ``tune.report`` (checkpoint saving and copying)
*and* the wait until the driver has processed the result and asks for the next one (a
function trainable's report blocks until then); Ray's own ``time_this_iter_s`` only sees the
first.

Full size: 2 × 2 rounds of 20 trials × 60 epochs of a BN-MLP [256, 256] on MNIST-1D (3-6 s a
trial here). Quick: 1 × 2 rounds of 4 trials × 3 epochs.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import Context
from benchmarks.orchestration import sweep as orchestration_sweep

WAYS = {"every epoch (before)": 0.0, "by cost (now)": None}


def timed_fit(config: dict[str, Any], run: Any) -> None:
    """The built-in trial function, recording its start and return (wall clock) in
    ``config["log"]``."""
    from tuner.models.train import fit

    start = time.time()
    fit(config, run)
    searched = {"train.lr": config["train"]["lr"], "train.momentum": config["train"]["momentum"]}
    with open(config["log"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"config": searched, "pid": os.getpid(), "start": start, "end": time.time()}) + "\n")


def per_epoch_loss(log: Path, rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Seconds a trial spends per epoch outside its epochs, from :func:`timed_trial`'s log."""

    from tuner.records import ROUND_KEY

    def searched(config: Mapping[str, Any]) -> str:  # Tune's config less the round the searcher drew it in
        return json.dumps({k: v for k, v in config.items() if k != ROUND_KEY}, sort_keys=True)

    compute = {searched(t[0]["config"]): (sum(r["epoch_s"] for r in t), len(t)) for t in rows if t}
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    first = {}
    for c in sorted(calls, key=lambda c: c["start"]):
        first.setdefault(c["pid"], c["start"])
    lost, epochs = 0.0, 0
    for c in calls:
        if c["start"] == first[c["pid"]]:
            continue
        work, n = compute[json.dumps(c["config"], sort_keys=True)]
        lost += c["end"] - c["start"] - work
        epochs += n
    return {"per_epoch_s": lost / max(epochs, 1), "trials_counted": len(calls) - len(first)}


def timed_round(
    ctx: Context, storage: Path, sweep: Any, data: Any, cpus: float, label: str, **trial_args: Any
) -> dict[str, Any]:
    """One round of ``sweep`` (every trial its full budget) through ``tuner.ray.experiment.run_experiment``
    with :func:`timed_fit`: wall time, Σ compute / CPUs, efficiency, the driver's CPU seconds,
    Ray's report figures and :func:`per_epoch_loss`; prints one line."""
    from tuner.ray import experiment
    from tuner.results import load_trials

    epochs = int(sweep.train["epochs"])
    log = storage / "calls.jsonl"
    trial_args = {
        "function": "benchmarks.checkpoint_cost:timed_fit",
        "base": {**sweep.base_config(), "log": str(log)},
        "data": data,
        "metric": "val_acc",
        "mode": "max",
        "seed": 0,
        **trial_args,
    }
    settings = common.round_settings(
        storage, "round-0", trial_args, sweep.search.parameters, sweep.search.num_samples, epochs, label
    )
    start, cpu_start = time.monotonic(), time.process_time()
    experiment.run_experiment(settings)
    wall, driver_cpu = time.monotonic() - start, time.process_time() - cpu_start
    summary = _Summary(load_trials(storage / "round-0", 0, epochs))
    compute = common.compute_s(summary)
    overhead = common.report_overhead(summary)
    loss = per_epoch_loss(log, common.result_rows(summary))
    row = {
        "wall_s": wall,
        "compute_s": compute,
        "lower_bound_s": compute / cpus,
        "efficiency": compute / cpus / wall,
        "driver_cpu_s": driver_cpu,
        "report_overhead": overhead,
        "per_epoch_loss": loss,
    }
    ctx.say(
        f"{label:<21}: wall {wall:5.1f}s, lower bound {compute / cpus:5.1f}s -> efficiency "
        f"{row['efficiency']:.2f}; a trial loses {loss['per_epoch_s'] * 1000:.1f} ms an epoch outside it "
        f"({overhead['in_report_median_s'] * 1000:.1f} ms inside tune.report; median epoch "
        f"{overhead['median_epoch_s'] * 1000:.0f} ms); {overhead['checkpoints']} checkpoints; driver CPU "
        f"{driver_cpu:.1f}s"
    )
    return row


def summarize(ctx: Context, runs: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, Any], float]:
    """Mean ± std of each way's rows, and the first way's mean wall time over the second's."""
    rows = {
        way: {
            "wall_s": common.mean_std([r["wall_s"] for r in rs]),
            "efficiency": common.mean_std([r["efficiency"] for r in rs]),
            "lost_per_epoch_ms": common.mean_std([r["per_epoch_loss"]["per_epoch_s"] * 1000 for r in rs]),
            "driver_cpu_s": common.mean_std([r["driver_cpu_s"] for r in rs]),
        }
        for way, rs in runs.items()
    }
    (before, b_rows), (now, n_rows) = list(runs.items())[:2]
    ratio = rows[before]["wall_s"][0] / rows[now]["wall_s"][0]
    ctx.say(
        f"mean wall {before} / {now}: {ratio:.2f}; efficiency {common.pm([r['efficiency'] for r in b_rows], 2)} "
        f"-> {common.pm([r['efficiency'] for r in n_rows], 2)}"
    )
    return rows, ratio


def compare(
    ctx: Context, ways: Mapping[str, Callable[[], AbstractContextManager[dict[str, Any]]]], title: str
) -> dict[str, Any]:
    """Rounds of the same sweep run each way in turn, A B A B, on one Ray instance (so the
    machine's noise hits all alike), summed up and plotted. A way is a context manager that
    is entered around its round and gives the trial's extra arguments."""
    from tuner import datasets
    from tuner.spec import from_dict

    repeats, trials, epochs = (1, 4, 3) if ctx.quick else (2, 20, 60)
    cpus = float(common.ensure_ray().get("CPU", 1))
    sweep = from_dict(orchestration_sweep(trials, epochs))
    data = datasets.load(sweep).without_test()
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for rep in range(repeats):
        for i, (way, setting) in enumerate(ways.items()):
            with setting() as trial_args:
                runs[way].append(
                    timed_round(
                        ctx, ctx.storage(f"round-{rep}-way-{i}"), sweep, data, cpus, f"{way} {rep + 1}", **trial_args
                    )
                )
    summary_rows, ratio = summarize(ctx, runs)
    plot(ctx, runs, title)
    return {
        "sizes": {"repeats": repeats, "trials": trials, "epochs": epochs},
        "cpus": cpus,
        "runs": runs,
        "summary": summary_rows,
        "wall_ratio_before_to_now": ratio,
    }


@contextlib.contextmanager
def _checkpointing(every_s: float | None) -> Iterator[dict[str, Any]]:
    yield {} if every_s is None else {"checkpoint_every_s": every_s}


def run(ctx: Context) -> dict[str, Any]:
    ways = {way: functools.partial(_checkpointing, every) for way, every in WAYS.items()}
    return compare(ctx, ways, "checkpointing every epoch vs by its cost")


class _Summary:
    """The little of a ``RunSummary`` that ``common.compute_s``/``report_overhead`` read."""

    def __init__(self, trials: list[Any]) -> None:
        self.run = type("Run", (), {"trials": trials})()


def plot(ctx: Context, runs: dict[str, list[dict[str, Any]]], title: str) -> None:
    """Each way's round wall times (with Σ compute / CPUs) and time lost per epoch."""
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
    for i, rows in enumerate(runs.values()):
        for j, r in enumerate(rows):
            x = i + (j - (len(rows) - 1) / 2) * 0.25
            a1.bar(x, r["wall_s"], width=0.22, color=["tab:gray", "tab:blue"][i])
            a1.bar(x, r["lower_bound_s"], width=0.1, color="k", alpha=0.35)
            a1.annotate(
                f"{r['efficiency']:.0%}",
                (x, r["wall_s"]),
                ha="center",
                fontsize=8,
                textcoords="offset points",
                xytext=(0, 2),
            )
        a2.bar(
            i,
            sum(r["per_epoch_loss"]["per_epoch_s"] for r in rows) / len(rows) * 1000,
            width=0.5,
            color=["tab:gray", "tab:blue"][i],
        )
    a1.set_xticks(range(len(runs)), list(runs), fontsize=8)
    a1.set_ylabel("round wall time (s); dark: Σ compute / CPUs")
    a2.set_xticks(range(len(runs)), list(runs), fontsize=8)
    a2.set_ylabel("ms a trial loses per epoch outside it")
    fig.suptitle(title)
    common.save(fig, ctx.png())
