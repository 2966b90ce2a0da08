"""Diabetes: the tuned BN-MLP of ``sweeps/diabetes_mlp.yaml`` against a linear regression.

The shipped regression sweep, run as ``tuner run`` runs it (the built-in trainer, MSE on
standardised targets, ASHA and a refine round), on scikit-learn's diabetes set (442 patients,
10 features; a fixed 88-patient test split the search never sees). Its best configuration is
then retrained on the train split for its full budget, with its own seed (the search trial's
very model) and with fresh seeds (``tuner.ray.worker.seed_task``, the code ``tuner retest``
runs), and scored once on the test split: R², RMSE and MAE in the target's units.

The baseline is measured in the same run on the same splits: scikit-learn's
``LinearRegression`` fitted on the same train split as the MLP (the val split held out, as in
the search), and on train + val (all it could see).

Full size: the shipped sweep (32 + 16 trials × ≤ 40 epochs) and 5 fresh seeds. Quick: 6 trials
× 6 epochs (grace period 2, no refine round) and 2 fresh seeds.
"""

from __future__ import annotations

import math
from typing import Any

from benchmarks import common
from benchmarks.common import Context

SWEEP = "sweeps/diabetes_mlp.yaml"


def _linear(data: Any) -> dict[str, dict[str, float]]:
    """LinearRegression's test scores, fitted on the train split and on train + val."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    out = {}
    fits = {"train split": (data.x_train, data.y_train), "train + val": data.train_and_val()}
    for label, (x, y) in fits.items():
        model = LinearRegression().fit(x.reshape(len(x), -1), y)
        pred = model.predict(data.x_test.reshape(len(data.x_test), -1))
        out[label] = _scores(np.asarray(pred, dtype=np.float64), np.asarray(data.y_test, dtype=np.float64))
    return out


def _scores(pred: Any, target: Any) -> dict[str, float]:
    err = pred.reshape(len(target), -1) - target.reshape(len(target), -1)
    ss_tot = ((target - target.mean()) ** 2).sum()
    return {
        "test_r2": float(1 - (err**2).sum() / ss_tot),
        "test_rmse": math.sqrt(float((err**2).mean())),
        "test_mae": float(abs(err).mean()),
    }


def _retrain(config: dict[str, Any], data: Any, seeds: list[int]) -> list[dict[str, Any]]:
    """The built-in trainer on ``config`` for its full budget once per seed, as Ray tasks."""
    from tuner.ray.worker import run_tasks, seed_task

    calls = [
        {"function": "tuner.models.train:fit", "config": config, "seed": s, "metric": "val_rmse", "mode": "min"}
        for s in seeds
    ]
    out = run_tasks(seed_task, calls, shared={"data": data}, cpu=1, gpu=0)
    for r in out:
        if "error" in r:
            raise RuntimeError(r["error"])
    return [{"seed": r["seed"], "diverged": r["diverged"], **r["metrics"]} for r in out]


def run(ctx: Context) -> dict[str, Any]:
    import random

    from tuner import datasets

    overrides: dict[str, Any] = {}
    if ctx.quick:
        overrides = {
            "search.num_samples": 6,
            "search.refine": None,
            "train.epochs": 6,
            "scheduler.grace_period": 2,
        }
    raw = common.sweep_dict(SWEEP, **overrides)
    if ctx.quick:
        raw["search"].pop("refine", None)
    common.ensure_ray()
    summary = common.run(ctx, raw, "diabetes")
    best, cfg = common.best_config(summary)
    data = datasets.load(summary.run.sweep)
    assert data is not None and data.x_test is not None
    linear = _linear(data)
    own_seed = int(cfg["train"].get("seed", 0))
    fresh = random.Random(12345).sample(range(1, 2**31 - 1), 2 if ctx.quick else 5)
    config = {k: cfg[k] for k in ("model", "train")}
    scored = _retrain(config, data, [own_seed, *fresh])
    own, others = scored[0], scored[1:]
    r2s = [r["test_r2"] for r in others]
    mean, std = common.mean_std(r2s)
    counts: dict[str, int] = {}
    for t in summary.run.trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    figures = {
        "sweep": SWEEP,
        "overrides": overrides,
        "wall_s": summary.wall_s,
        "trials": len(summary.run.trials),
        "statuses": counts,
        "epochs": common.epochs_of(summary),
        "best": {"trial": best.trial_id, "val_rmse": best.score("val_rmse"), "params": best.params},
        "mlp_own_seed": own,
        "mlp_fresh_seeds": others,
        "mlp_fresh_test_r2_mean": mean,
        "mlp_fresh_test_r2_std": std,
        "linear_regression": linear,
        "r2_gain_vs_linear_train_split": own["test_r2"] - linear["train split"]["test_r2"],
        "protocol": "best config retrained on the train split for its full budget (own seed: the search "
        "trial's model; fresh seeds: its spread), scored once on the test split; LinearRegression "
        "fitted on the same train split (and on train + val), same test split",
    }
    ctx.say(
        f"sweep: {len(summary.run.trials)} trials ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}), "
        f"{figures['epochs']} epochs, {summary.wall_s:.0f}s; best val_rmse {best.score('val_rmse'):.2f}"
    )
    rows = [
        ["BN-MLP, tuned (its own seed)", f"{own['test_r2']:.3f}", f"{own['test_rmse']:.2f}", f"{own['test_mae']:.2f}"],
        [
            f"BN-MLP, tuned ({len(others)} fresh seeds)",
            f"{mean:.3f} ± {std:.3f}",
            common.pm([r["test_rmse"] for r in others], 2),
            common.pm([r["test_mae"] for r in others], 2),
        ],
    ]
    for label, s in linear.items():
        rows.append(
            [f"LinearRegression ({label})", f"{s['test_r2']:.3f}", f"{s['test_rmse']:.2f}", f"{s['test_mae']:.2f}"]
        )
    for line in common.table(rows, ["model (test split, 88 patients)", "R²", "RMSE", "MAE"]):
        ctx.say(line)
    _plot(ctx, own, r2s, linear)
    return figures


def _plot(ctx: Context, own: dict[str, Any], r2s: list[float], linear: dict[str, dict[str, float]]) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    labels = ["BN-MLP (own seed)", "BN-MLP (fresh seeds)", *[f"linear ({k})" for k in linear]]
    values = [own["test_r2"], sum(r2s) / len(r2s), *[v["test_r2"] for v in linear.values()]]
    ax.barh(labels, values, color=["#47a", "#7ad", "#999", "#bbb"])
    ax.scatter(r2s, [1] * len(r2s), color="k", s=10, zorder=3)
    for y, v in enumerate(values):
        ax.annotate(f"{v:.3f}", (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("R² on the test split")
    ax.set_title("diabetes: tuned BN-MLP vs linear regression")
    common.save(fig, ctx.png())
