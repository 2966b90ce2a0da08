"""The default sweep, sweeps/quickstart.yaml, run exactly as `tuner run` runs it.

Reports the wall time (``run_sweep``: data, Ray start, every trial, export), the number of
trials, the epochs ASHA let them train against the full-budget total (trials × epochs), the
best val_acc, and the best configuration's test accuracy: that configuration retrained on the
train split for its full budget with its own seed (``tuner.ray.worker.seed_task``, the code
``tuner retest`` runs; the same seed gives the search trial's very model), then evaluated once
on the test split, which the search never saw.

Quick size: 6 trials of 4 epochs (grace period 1).
"""

from __future__ import annotations

from typing import Any

from benchmarks import common
from benchmarks.common import Context

SWEEP = "sweeps/quickstart.yaml"


def run(ctx: Context) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if ctx.quick:
        overrides = {"search.num_samples": 6, "train.epochs": 4, "scheduler.grace_period": 1}
    raw = common.sweep_dict(SWEEP, **overrides)
    summary = common.run(ctx, raw, "quickstart")
    trials = summary.run.trials
    max_t = int(raw["train"]["epochs"])
    epochs = common.epochs_of(summary)
    best, cfg = common.best_config(summary)
    (scored,) = common.score([cfg])
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    figures = {
        "sweep": SWEEP,
        "overrides": overrides,
        "wall_s": summary.wall_s,
        "trials": len(trials),
        "statuses": counts,
        "epochs": epochs,
        "full_budget_epochs": len(trials) * max_t,
        "epochs_fraction": epochs / (len(trials) * max_t),
        "compute_s": common.compute_s(summary),
        "report_overhead": common.report_overhead(summary),
        "best": {
            "trial": best.trial_id,
            "val_acc": best.score("val_acc"),
            "epochs": best.epochs,
            "params": best.params,
        },
        "test": {
            "protocol": "best config retrained on the train split for its full budget with its own seed "
            "(tuner.ray.worker.seed_task), evaluated once on the test split",
            "val_acc": scored["val_acc"],
            "test_acc": scored["test_acc"],
            "seconds": scored["seconds"],
        },
        "published_mlp_baseline": 0.68,
    }
    ctx.say(f"wall time {summary.wall_s:.1f}s (data, Ray start, {len(trials)} trials, export)")
    ctx.say(f"trials {len(trials)}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    ctx.say(f"epochs trained {epochs} of {len(trials) * max_t} at full budget ({epochs / (len(trials) * max_t):.0%})")
    ctx.say(
        f"best val_acc {best.score('val_acc'):.4f} (trial {best.trial_id}, {best.epochs} epochs): "
        + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    )
    ctx.say(
        f"best config retrained (train split, own seed): val_acc {scored['val_acc']:.4f}, "
        f"test_acc {scored['test_acc']:.4f} (published MLP baseline 0.68)"
    )
    _plot(ctx, summary, best.trial_id, scored["test_acc"])
    return figures


def _plot(ctx: Context, summary: Any, best_id: str, test_acc: float) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for t in summary.run.trials:
        xs = [h["epoch"] for h in t.history]
        ys = [h.get("val_acc", 0.0) for h in t.history]
        if t.trial_id == best_id:
            continue
        ax.plot(
            xs,
            ys,
            color="0.7" if t.status != "finished" else "tab:blue",
            lw=0.8,
            alpha=0.8 if t.status == "finished" else 0.5,
        )
    best = next(t for t in summary.run.trials if t.trial_id == best_id)
    ax.plot(
        [h["epoch"] for h in best.history],
        [h["val_acc"] for h in best.history],
        color="tab:red",
        lw=2,
        label=f"best: val {best.score('val_acc'):.3f}, test {test_acc:.3f}",
    )
    ax.plot([], [], color="0.7", label="stopped early by ASHA")
    ax.plot([], [], color="tab:blue", label="ran the full budget")
    ax.axhline(0.68, color="k", ls=":", lw=1, label="published MLP baseline (test) 0.68")
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_acc")
    ax.set_title(f"quickstart: {len(summary.run.trials)} trials in {summary.wall_s:.0f}s")
    ax.legend(loc="lower right", fontsize=8)
    common.save(fig, ctx.png())
