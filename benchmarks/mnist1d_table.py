"""The MNIST-1D table: tuned MLP and CNN, with and without BN, beside the published baselines.

Each of the four networks is tuned by a shipped sweep run exactly as ``tuner run`` runs it
(MLP: ``sweeps/quickstart.yaml``, random search + ASHA; CNN: ``sweeps/mnist1d_cnn.yaml``, TPE +
ASHA), with ``model.batch_norm: false`` for the variants without BN (same search space). The
best configuration of each is then re-tested through ``tuner retest`` (``tuner.retest``: 5
fresh seeds, full budget on the train split, then the test split once): test accuracy mean ±
std over the 5 seeds.

Published MNIST-1D test accuracies (Greydanus, "Scaling down deep learning", 2020):
logistic regression 32%, MLP 68%, CNN 94%, human 96%.

Full size: the shipped sweeps as they are. Quick: the MLP only, 3 trials × 2 epochs, 2 seeds.
"""

from __future__ import annotations

from typing import Any

from benchmarks import common
from benchmarks.common import Context

PUBLISHED = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "human": 0.96}
SWEEPS = {"MLP": "sweeps/quickstart.yaml", "CNN": "sweeps/mnist1d_cnn.yaml"}


def run(ctx: Context) -> dict[str, Any]:
    import tuner

    common.ensure_ray()
    archs = ["MLP"] if ctx.quick else ["MLP", "CNN"]
    seeds = 2 if ctx.quick else 5
    rows = []
    for arch in archs:
        for bn in (True, False):
            overrides: dict[str, Any] = {"model.batch_norm": bn, "name": f"{arch.lower()}-{'bn' if bn else 'nobn'}"}
            if ctx.quick:
                overrides.update({"search.num_samples": 3, "train.epochs": 2, "scheduler.grace_period": 1})
            raw = common.sweep_dict(SWEEPS[arch], **overrides)
            summary = common.run(ctx, raw, overrides["name"])
            entry = tuner.retest(summary.export_path, seeds=seeds, top_k=1, write=lambda line: None)
            best = entry["results"][0]
            row = {
                "network": f"{'BN-' + arch if bn else arch + ', no BN'}",
                "batch_norm": bn,
                "sweep": SWEEPS[arch],
                "overrides": overrides,
                "trials": len(summary.run.trials),
                "sweep_wall_s": summary.wall_s,
                "best_val_acc_in_sweep": summary.run.ranked()[0].score("val_acc"),
                "params": best["params"],
                "retest_seeds": entry["seeds"],
                "test": best["test"],
                "val": best["val"],
                "retest_s": entry["seconds"],
            }
            rows.append(row)
            ctx.say(
                f"{row['network']:<11} test_acc {best['test']['mean']:.3f} ± {best['test']['std']:.3f} over "
                f"{seeds} seeds (val {best['val']['mean']:.3f}; sweep {len(summary.run.trials)} trials in "
                f"{summary.wall_s:.0f}s, retest {entry['seconds']:.0f}s)"
            )
    ctx.say("")
    lines = [
        [r["network"], f"{r['test']['mean']:.1%} ± {r['test']['std']:.1%}", f"tuned here (tuner retest, {seeds} seeds)"]
        for r in rows
    ]
    lines += [[f"{k} (published)", f"{v:.0%}", "Greydanus 2020"] for k, v in PUBLISHED.items()]
    for line in common.table(lines, ["model", "MNIST-1D test accuracy", "source"]):
        ctx.say(line)
    _plot(ctx, rows)
    return {"sizes": {"archs": archs, "seeds": seeds, "quick": ctx.quick}, "published": PUBLISHED, "rows": rows}


def _plot(ctx: Context, rows: list[dict[str, Any]]) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["network"] for r in rows] + [f"{k}\n(published)" for k in PUBLISHED]
    means = [r["test"]["mean"] for r in rows] + list(PUBLISHED.values())
    errs = [r["test"]["std"] for r in rows] + [0.0] * len(PUBLISHED)
    colors = ["tab:blue" if r["batch_norm"] else "tab:orange" for r in rows] + ["0.6"] * len(PUBLISHED)
    ax.bar(range(len(names)), means, yerr=errs, color=colors, capsize=3)
    for i, m in enumerate(means):
        ax.annotate(f"{m:.0%}", (i, m), ha="center", fontsize=8, textcoords="offset points", xytext=(0, 3))
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MNIST-1D test accuracy")
    ax.set_title("tuned here (mean ± std over fresh seeds) vs published (grey)")
    common.save(fig, ctx.png())
