"""Batch normalization makes the search easier: how many learning rates work, with and without BN.

For each data set, learning rates are drawn log-uniformly from [1e-4, 10] (the same draws with
and without BN: same ``search.seed``), and each trains for a fixed budget with SGD (momentum 0.9,
constant rate), no early stopping. Reported: the fraction of learning rates whose val_acc
reaches >= 90% of the best val_acc on that data set (the best of both variants: one yardstick
for both), and the same against each variant's own best. A diverged trial (NaN or inf loss)
counts as val_acc 0.

Data sets and networks: MNIST-1D with an MLP [100, 100]; scikit-learn's digits with a 2-D CNN
[16, 32]. ``batch_norm: false`` builds the same networks with biases and without BN.

Full size: 24 learning rates × 10 epochs per variant. Quick: 3 × 1 epoch.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks import common
from benchmarks.common import Context

LR = (1e-4, 10.0)
DATASETS = {
    "mnist1d": {
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [100, 100]},
        "batch_size": 128,
    },
    "digits": {
        "data": {"name": "digits", "val_fraction": 0.2},
        "model": {"name": "cnn", "hidden": [16, 32]},
        "batch_size": 64,
    },
}
THRESHOLD = 0.9


def sweep(dataset: str, batch_norm: bool, n: int, epochs: int) -> dict[str, Any]:
    d = DATASETS[dataset]
    return {
        "name": f"{dataset}-{'bn' if batch_norm else 'nobn'}",
        "metric": "val_acc",
        "mode": "max",
        "data": d["data"],
        "model": {**d["model"], "batch_norm": batch_norm},
        "train": {"epochs": epochs, "batch_size": d["batch_size"], "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
        "search": {
            "method": "random",
            "num_samples": n,
            "seed": 0,
            "parameters": {"train.lr": {"distribution": "log_uniform", "min": LR[0], "max": LR[1]}},
        },
        "scheduler": {"name": "none"},
        "resources": {"cpu": 1, "gpu": 0},
    }


def fraction(accs: list[float], reference: float) -> float:
    """The fraction of ``accs`` at or above ``THRESHOLD`` × ``reference``."""
    return sum(a >= THRESHOLD * reference for a in accs) / max(len(accs), 1)


def run(ctx: Context) -> dict[str, Any]:
    n, epochs = (3, 1) if ctx.quick else (24, 10)
    common.ensure_ray()
    results: dict[str, Any] = {}
    for dataset in DATASETS:
        per: dict[str, Any] = {}
        for bn in (True, False):
            summary = common.run(ctx, sweep(dataset, bn, n, epochs), f"{dataset}-{bn}")
            points = sorted((t.params["train.lr"], _acc(t)) for t in summary.run.trials)
            per["bn" if bn else "no_bn"] = {
                "points": points,
                "diverged": sum(t.status == "diverged" for t in summary.run.trials),
            }
        best = max(a for v in per.values() for _, a in v["points"])
        for v in per.values():
            accs = [a for _, a in v["points"]]
            v["best"] = max(accs)
            v["fraction_of_overall_best"] = fraction(accs, best)
            v["fraction_of_own_best"] = fraction(accs, v["best"])
            good = [lr for lr, a in v["points"] if a >= THRESHOLD * best]
            v["good_lr_range"] = [min(good), max(good)] if good else None
        results[dataset] = {"best": best, **per}
        for key, label in (("bn", "BN"), ("no_bn", "no BN")):
            v = per[key]
            span = f", good lrs {v['good_lr_range'][0]:.2g}..{v['good_lr_range'][1]:.2g}" if v["good_lr_range"] else ""
            ctx.say(
                f"{dataset} {label:>5}: {v['fraction_of_overall_best']:.0%} of {n} learning rates reach "
                f">= 90% of the best val_acc {best:.3f} ({v['fraction_of_own_best']:.0%} of its own best "
                f"{v['best']:.3f}; {v['diverged']} diverged{span})"
            )
    _plot(ctx, results)
    return {
        "sizes": {"learning_rates": n, "epochs": epochs},
        "lr_range": LR,
        "threshold": THRESHOLD,
        "results": results,
    }


def _acc(t: Any) -> float:
    v = t.score("val_acc")
    return 0.0 if v is None or not math.isfinite(v) else float(v)


def _plot(ctx: Context, results: dict[str, Any]) -> None:
    plt = common.pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), squeeze=False)
    for ax, (dataset, r) in zip(axes[0], results.items()):
        for key, color, label in (("bn", "tab:blue", "with BN"), ("no_bn", "tab:orange", "without BN")):
            pts = r[key]["points"]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                "o-",
                color=color,
                ms=4,
                lw=1,
                label=f"{label}: {r[key]['fraction_of_overall_best']:.0%} within 90% of best",
            )
        ax.axhline(THRESHOLD * r["best"], color="k", ls=":", lw=1, label="90% of the best")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("val_acc (diverged = 0)")
        ax.set_title(f"{dataset}")
        ax.legend(fontsize=8)
    common.save(fig, ctx.png())
