"""The MNIST-1D table over repeated sweeps: tuned MLP and CNN, with and without BN, beside the
published baselines, with the spread across sweeps and what holds of the BN comparison.

Each row is tuned by a shipped sweep through the public API, as a user would run it:
``tuner.run`` (MLP: ``sweeps/mnist1d_mlp.yaml``; CNN: ``sweeps/mnist1d_cnn.yaml``; the rows
without BN: the same file with ``model.batch_norm: false``, same space), once per sweep seed
(``search.seed``: other configurations, other ASHA decisions); then each sweep's best
configuration is re-tested by ``tuner.retest`` (fresh seeds, full budget on the train split,
the test split once). A row's figure is the mean over its sweeps of each sweep's mean test
accuracy; beside it the spread across sweeps (std of the sweeps' means, their range) and the
spread across seeds within a sweep (one configuration's luck).

What holds: the BN vs no-BN difference of each network, paired by sweep seed (the same seed
draws the same first configurations), holds when every sweep seed gives it the same sign and
a paired t-test over the sweep seeds says p < 0.05; otherwise the table says it does not.

Published MNIST-1D test accuracies (Greydanus, "Scaling down deep learning", 2020):
logistic regression 32%, MLP 68%, CNN 94%, human 96%.

Full size: the shipped sweeps as they are, 3 sweep seeds per row, 5 retest seeds. Quick: the
MLP only, 1 sweep seed, 3 trials × 2 epochs, 2 retest seeds.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import ROOT, Context

PUBLISHED = {"logistic regression": 0.32, "MLP": 0.68, "CNN": 0.94, "human": 0.96}
SWEEPS = {"MLP": "sweeps/mnist1d_mlp.yaml", "CNN": "sweeps/mnist1d_cnn.yaml"}
GOALS = {("MLP", True): 0.72, ("CNN", True): 0.97}  # issue 12: mean over sweep seeds


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        small = {"search.num_samples": 3, "train.epochs": 2, "scheduler.grace_period": 1}
        return {"archs": ["MLP"], "sweep_seeds": [0], "retest_seeds": 2, "overrides": small}
    return {"archs": ["MLP", "CNN"], "sweep_seeds": [0, 1, 2], "retest_seeds": 5, "overrides": {}}


def rows_wanted(text: str) -> set[tuple[str, bool]] | None:
    """The rows named in ``TUNER_TABLE_ROWS`` (``mlp-bn,cnn-bn,mlp-nobn,cnn-nobn``; empty:
    every row). A BN comparison is made only for a network with both of its rows."""
    if not text.strip():
        return None
    known = {f"{a.lower()}-{'bn' if bn else 'nobn'}": (a, bn) for a in SWEEPS for bn in (True, False)}
    unknown = [t for t in text.split(",") if t.strip() not in known]
    if unknown:
        raise SystemExit(f"TUNER_TABLE_ROWS: {unknown} not among {sorted(known)}")
    return {known[t.strip()] for t in text.split(",")}


def name(arch: str, bn: bool) -> str:
    return f"BN-{arch}" if bn else f"{arch}, no BN"


def one_sweep(ctx: Context, arch: str, bn: bool, seed: int, size: dict[str, Any]) -> dict[str, Any]:
    """One sweep of a row and the retest of its best: what it found and what it cost."""
    import tuner

    label = f"{arch.lower()}-{'bn' if bn else 'nobn'}-s{seed}"
    overrides = {"model.batch_norm": bn, "search.seed": seed, **size["overrides"]}
    summary = tuner.run(ROOT / SWEEPS[arch], storage=ctx.storage(label), name=label, overrides=overrides, quiet=True)
    entry = tuner.retest(summary.export_path, seeds=size["retest_seeds"], top_k=1, write=lambda line: None)
    best = entry.results[0]
    test = best.test["test_acc"]
    trials = summary.run.trials
    out = {
        "row": name(arch, bn),
        "sweep_seed": seed,
        "overrides": overrides,
        "trials": len(trials),
        "epochs": common.epochs_of(summary),
        "sweep_wall_s": summary.wall_s,
        "sweep_compute_s": common.compute_s(summary),
        "best_val_acc_in_sweep": summary.run.ranked()[0].score("val_acc"),
        "params": best.params,
        "retest_seeds": entry.seeds,
        "test_acc": test.scores,
        "test_mean": test.mean,
        "test_std": test.std,
        "val_mean": best.val.mean,
        "diverged": best.diverged,
        "retest_s": entry.seconds,
    }
    ctx.say(
        f"{out['row']:<11} sweep seed {seed}: test_acc {test.mean:.3f} ± {test.std:.3f} over {len(entry.seeds)} seeds "
        f"(val {best.val.mean:.3f}); sweep {len(trials)} trials, {out['epochs']} epochs in {summary.wall_s:.0f}s, "
        f"retest {entry.seconds:.0f}s"
    )
    return out


def summarize(arch: str, bn: bool, sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    means = [s["test_mean"] for s in sweeps]
    m, spread = common.mean_std(means)
    goal = GOALS.get((arch, bn))
    return {
        "row": name(arch, bn),
        "arch": arch,
        "batch_norm": bn,
        "sweep": SWEEPS[arch],
        "test_mean": m,
        "spread_across_sweeps": spread,
        "range": [min(means), max(means)],
        "within_sweep_std": float(np.mean([s["test_std"] for s in sweeps])),
        "sweep_wall_s": common.mean_std([s["sweep_wall_s"] for s in sweeps]),
        "retest_s": common.mean_std([s["retest_s"] for s in sweeps]),
        "goal": goal,
        "goal_met": None if goal is None else m >= goal,
    }


def compare(arch: str, by_row: dict[tuple[str, bool], list[dict[str, Any]]]) -> dict[str, Any]:
    """BN minus no-BN, paired by sweep seed; holds when every seed agrees and p < 0.05."""
    from scipy.stats import ttest_rel

    with_bn = {s["sweep_seed"]: s["test_mean"] for s in by_row[(arch, True)]}
    without = {s["sweep_seed"]: s["test_mean"] for s in by_row[(arch, False)]}
    seeds = sorted(set(with_bn) & set(without))
    diffs = [with_bn[s] - without[s] for s in seeds]
    p = float(ttest_rel([with_bn[s] for s in seeds], [without[s] for s in seeds]).pvalue) if len(seeds) > 1 else None
    same_sign = len(diffs) > 0 and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))
    holds = bool(same_sign and p is not None and math.isfinite(p) and p < 0.05)
    m, s = common.mean_std(diffs)
    per_seed = ", ".join(f"{d * 100:+.1f}" for d in diffs)
    p_text = "" if p is None else f"; paired t-test p = {p:.3f}"
    verdict = (
        f"{arch}: with BN {'better' if m > 0 else 'worse'} by {abs(m) * 100:.1f} points (per sweep seed: {per_seed}"
        f"{p_text}): {'HOLDS' if holds else 'does NOT hold'}"
    )
    return {
        "arch": arch,
        "diffs": diffs,
        "mean": m,
        "std": s,
        "p_value": p,
        "same_sign": same_sign,
        "holds": holds,
        "verdict": verdict,
    }


def run(ctx: Context) -> dict[str, Any]:
    size = sizes(ctx.quick)
    common.ensure_ray()
    by_row: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    wanted = rows_wanted(os.environ.get("TUNER_TABLE_ROWS", ""))
    for arch in size["archs"]:
        for bn in (True, False):
            if wanted is None or (arch, bn) in wanted:
                by_row[(arch, bn)] = [one_sweep(ctx, arch, bn, seed, size) for seed in size["sweep_seeds"]]
    rows = [summarize(arch, bn, sweeps) for (arch, bn), sweeps in by_row.items()]
    comparisons = [
        compare(arch, by_row) for arch in size["archs"] if (arch, True) in by_row and (arch, False) in by_row
    ]
    ctx.say("")
    n_sweeps, n_seeds = len(size["sweep_seeds"]), size["retest_seeds"]
    lines = [
        [
            r["row"],
            f"{r['test_mean']:.1%}",
            f"± {r['spread_across_sweeps']:.1%} ({r['range'][0]:.1%}–{r['range'][1]:.1%})",
            f"± {r['within_sweep_std']:.1%}",
            f"{r['sweep_wall_s'][0]:.0f}s + {r['retest_s'][0]:.0f}s",
            "" if r["goal"] is None else f"{r['goal']:.0%}: {'met' if r['goal_met'] else 'NOT met'}",
        ]
        for r in rows
    ]
    lines += [[f"{k} (published)", f"{v:.0%}", "", "", "", "Greydanus 2020"] for k, v in PUBLISHED.items()]
    header = [
        "model",
        f"test acc (mean of {n_sweeps} sweeps)",
        "across sweeps",
        f"across {n_seeds} seeds",
        "sweep + retest",
        "goal",
    ]
    for line in common.table(lines, header):
        ctx.say(line)
    for c in comparisons:
        ctx.say(c["verdict"])
    _plot(ctx, rows, by_row)
    return {
        "sizes": size,
        "published": PUBLISHED,
        "rows": rows,
        "comparisons": comparisons,
        "sweeps": [s for sweeps in by_row.values() for s in sweeps],
    }


def _plot(ctx: Context, rows: list[dict[str, Any]], by_row: dict[tuple[str, bool], list[dict[str, Any]]]) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [r["row"] for r in rows] + [f"{k}\n(published)" for k in PUBLISHED]
    means = [r["test_mean"] for r in rows] + list(PUBLISHED.values())
    colors = ["tab:blue" if r["batch_norm"] else "tab:orange" for r in rows] + ["0.6"] * len(PUBLISHED)
    ax.bar(range(len(names)), means, color=colors, alpha=0.6)
    for i, r in enumerate(rows):  # each sweep's retest: its mean and the spread of its seeds
        sweeps = by_row[(r["arch"], r["batch_norm"])]
        for j, s in enumerate(sweeps):
            x = i + (j - (len(sweeps) - 1) / 2) * 0.2
            ax.errorbar(x, s["test_mean"], yerr=s["test_std"], fmt="o", ms=3, color="k", capsize=2)
    for i, m in enumerate(means):
        ax.annotate(f"{m:.1%}", (i, m), ha="center", fontsize=8, textcoords="offset points", xytext=(0, 3))
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("MNIST-1D test accuracy")
    ax.set_title("tuned here: bar = mean over sweeps, dots = each sweep's best (± std over fresh seeds)")
    common.save(fig, ctx.png())
