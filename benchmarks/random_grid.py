"""Random vs grid search at equal budget, one important and one unimportant parameter.

A BN-MLP ([100, 100]) on MNIST-1D, SGD with momentum 0.9 at a constant learning rate, 10
epochs, no early stopping. Searched: ``train.lr`` log-uniform on [1e-4, 1] (it matters) and
``train.weight_decay`` log-uniform on [1e-6, 1e-4] (it hardly does at this budget). Grid: 3 × 3
points, evenly spaced on each parameter's log scale; random: 9 draws. Each repetition gives
both methods the same ``train.seed`` (initialisation, batch order); random search also gets a
new ``search.seed``. Reported: the best val_acc each finds and how many distinct learning
rates each tried (Bergstra & Bengio, JMLR 2012: random search tries as many values of the
important parameter as it has trials; a grid, only its side).

Full size: 8 repetitions × 9 trials each. Quick: 2 repetitions × 4 trials (2 × 2 grid) × 2 epochs.
"""

from __future__ import annotations

from typing import Any

from benchmarks import common
from benchmarks.common import Context

LR = (1e-4, 1.0)
WD = (1e-6, 1e-4)


def sweep(method: str, rep: int, side: int, epochs: int) -> dict[str, Any]:
    """The sweep of one method and repetition (``side`` × ``side`` trials)."""
    params: dict[str, Any] = {
        "train.lr": {"distribution": "log_uniform", "min": LR[0], "max": LR[1]},
        "train.weight_decay": {"distribution": "log_uniform", "min": WD[0], "max": WD[1]},
    }
    if method == "grid":
        for p in params.values():
            p["grid_points"] = side
    return {
        "name": f"{method}-{rep}",
        "metric": "val_acc",
        "mode": "max",
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [100, 100], "batch_norm": True},
        "train": {"epochs": epochs, "batch_size": 128, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "seed": rep},
        "search": {
            "method": method,
            "num_samples": 1 if method == "grid" else side * side,
            "seed": rep,
            "parameters": params,
        },
        "scheduler": {"name": "none"},
        "resources": {"cpu": 1, "gpu": 0},
    }


def run(ctx: Context) -> dict[str, Any]:
    reps, side, epochs = (2, 2, 2) if ctx.quick else (8, 3, 10)
    common.ensure_ray()
    rows = []
    for rep in range(reps):
        row: dict[str, Any] = {"rep": rep}
        for method in ("grid", "random"):
            summary = common.run(ctx, sweep(method, rep, side, epochs), f"{method}-{rep}")
            trials = summary.run.trials
            best = summary.run.ranked()[0]
            row[method] = {
                "best_val_acc": best.score("val_acc"),
                "best_lr": best.params["train.lr"],
                "distinct_lr": len({round(t.params["train.lr"], 12) for t in trials}),
                "trials": len(trials),
                "points": [(t.params["train.lr"], t.params["train.weight_decay"], t.score("val_acc")) for t in trials],
            }
        rows.append(row)
        ctx.say(
            f"rep {rep}: best val_acc grid {row['grid']['best_val_acc']:.4f} "
            f"({row['grid']['distinct_lr']} lrs), random {row['random']['best_val_acc']:.4f} "
            f"({row['random']['distinct_lr']} lrs)"
        )
    wins = sum(r["random"]["best_val_acc"] > r["grid"]["best_val_acc"] for r in rows)
    ties = sum(r["random"]["best_val_acc"] == r["grid"]["best_val_acc"] for r in rows)
    summary = {
        "best_val_acc_grid": common.mean_std([r["grid"]["best_val_acc"] for r in rows]),
        "best_val_acc_random": common.mean_std([r["random"]["best_val_acc"] for r in rows]),
        "distinct_lr_grid": common.mean_std([r["grid"]["distinct_lr"] for r in rows]),
        "distinct_lr_random": common.mean_std([r["random"]["distinct_lr"] for r in rows]),
        "random_better": wins,
        "ties": ties,
        "repetitions": reps,
    }
    ctx.say(
        f"{reps} repetitions of {side * side} trials: best val_acc grid "
        f"{common.pm([r['grid']['best_val_acc'] for r in rows], 4)}, random "
        f"{common.pm([r['random']['best_val_acc'] for r in rows], 4)}; random better in {wins}, tied in {ties}"
    )
    ctx.say(f"distinct learning rates tried: grid {side}, random {summary['distinct_lr_random'][0]:.0f}")
    _plot(ctx, rows, side)
    return {
        "sizes": {"repetitions": reps, "trials": side * side, "epochs": epochs},
        "space": {"train.lr": LR, "train.weight_decay": WD},
        "per_rep": rows,
        "summary": summary,
    }


def _plot(ctx: Context, rows: list[dict[str, Any]], side: int) -> None:
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for method, color, marker in (("grid", "tab:gray", "s"), ("random", "tab:red", "o")):
        pts = [p for r in rows for p in r[method]["points"]]
        a1.scatter(
            [p[0] for p in pts],
            [p[2] for p in pts],
            s=14,
            color=color,
            marker=marker,
            alpha=0.6,
            label=f"{method} ({side * side} trials a repetition)",
        )
    a1.set_xscale("log")
    a1.set_xlabel("learning rate (important)")
    a1.set_ylabel("val_acc")
    a1.legend(fontsize=8)
    a1.set_title("every trial of every repetition")
    x = list(range(len(rows)))
    a2.plot(x, [r["grid"]["best_val_acc"] for r in rows], "s-", color="tab:gray", label="grid: best")
    a2.plot(x, [r["random"]["best_val_acc"] for r in rows], "o-", color="tab:red", label="random: best")
    a2.set_xlabel("repetition")
    a2.set_ylabel("best val_acc")
    a2.set_xticks(x)
    a2.legend(fontsize=8)
    a2.set_title("best found at equal budget")
    common.save(fig, ctx.png())
