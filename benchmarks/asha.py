"""ASHA vs full-budget random search on the same sampled configurations.

For each sweep seed, the quickstart space (BN-MLP on MNIST-1D) is searched twice with the same
random configurations (same ``search.seed``: checked): once under ASHA with the sweep file's
default grace period and reduction factor (``tuner/spec/schema.py``; max 20 epochs) and once
with ``scheduler.name: none`` (every trial trains its full budget). Reported per seed and averaged: epochs consumed (ratio full / ASHA), wall
time of ``run_sweep`` (ratio), the best val_acc, and the best configuration's test accuracy.

Test protocol (the same for both): the run's best trial by final val_acc; its configuration
retrained on the train split for the full budget with its own seed (``seed_task``, as
``tuner retest`` does), evaluated once on the test split.

Reference: Li et al., "A System for Massively Parallel Hyperparameter Tuning" (ASHA, MLSys
2020) report an order of magnitude less compute than random search for a comparable result.

``bn_rungs`` measures the same comparison more cheaply (the full-budget side from one set of
trainings that also gives every rung score) and with and without precise BN.

Full size: 3 seeds × 48 configurations × 20 epochs. Quick: 1 seed × 4 configurations × 3 epochs.
Wall times are measured with Ray already started.
"""

from __future__ import annotations

import json
from typing import Any

from benchmarks import common
from benchmarks.common import Context

SWEEP = "sweeps/quickstart.yaml"


def sizes(quick: bool) -> dict[str, Any]:
    from tuner.spec.schema import SCHEDULER_FIELDS

    eta = SCHEDULER_FIELDS["reduction_factor"].default
    if quick:
        return {"seeds": [0], "num_samples": 4, "epochs": 3, "grace_period": 1, "reduction_factor": eta}
    grace = SCHEDULER_FIELDS["grace_period"].default
    return {"seeds": [0, 1, 2], "num_samples": 48, "epochs": 20, "grace_period": grace, "reduction_factor": eta}


def run(ctx: Context) -> dict[str, Any]:
    size = sizes(ctx.quick)
    common.ensure_ray()
    rows: list[dict[str, Any]] = []
    for seed in size["seeds"]:
        base = {
            "search.seed": seed,
            "search.num_samples": size["num_samples"],
            "train.epochs": size["epochs"],
            "scheduler.grace_period": size["grace_period"],
            "scheduler.reduction_factor": size["reduction_factor"],
        }
        runs = {}
        for scheduler in ("asha", "none"):
            raw = common.sweep_dict(SWEEP, **base, **{"scheduler.name": scheduler, "name": f"asha-{scheduler}-{seed}"})
            runs[scheduler] = common.run(ctx, raw, f"{scheduler}-{seed}")
        configs = {s: sorted(json.dumps(t.params, sort_keys=True) for t in r.run.trials) for s, r in runs.items()}
        if configs["asha"] != configs["none"]:
            raise RuntimeError(f"seed {seed}: ASHA and full-budget runs sampled different configurations")
        bests = {s: common.best_config(r) for s, r in runs.items()}
        scored = common.score([bests["asha"][1], bests["none"][1]])
        row = {"seed": seed, "same_configurations": True}
        for (s, r), sc in zip(runs.items(), scored):
            row[s] = {
                "wall_s": r.wall_s,
                "epochs": common.epochs_of(r),
                "compute_s": common.compute_s(r),
                "best_val_acc": bests[s][0].score("val_acc"),
                "best_params": bests[s][0].params,
                "test_acc": sc["test_acc"],
            }
        row["epochs_ratio"] = row["none"]["epochs"] / row["asha"]["epochs"]
        row["wall_ratio"] = row["none"]["wall_s"] / row["asha"]["wall_s"]
        row["compute_ratio"] = row["none"]["compute_s"] / row["asha"]["compute_s"]
        row["same_best"] = bests["asha"][0].params == bests["none"][0].params
        rows.append(row)
        ctx.say(
            f"seed {seed}: epochs {row['none']['epochs']} / {row['asha']['epochs']} = {row['epochs_ratio']:.2f}x, "
            f"wall {row['none']['wall_s']:.0f}s / {row['asha']['wall_s']:.0f}s = {row['wall_ratio']:.2f}x; "
            f"best test_acc full {row['none']['test_acc']:.3f}, ASHA {row['asha']['test_acc']:.3f}"
            f"{' (same best config)' if row['same_best'] else ''}"
        )
    summary = {
        "epochs_ratio": common.mean_std([r["epochs_ratio"] for r in rows]),
        "wall_ratio": common.mean_std([r["wall_ratio"] for r in rows]),
        "compute_ratio": common.mean_std([r["compute_ratio"] for r in rows]),
        "test_acc_asha": common.mean_std([r["asha"]["test_acc"] for r in rows]),
        "test_acc_full": common.mean_std([r["none"]["test_acc"] for r in rows]),
        "val_acc_asha": common.mean_std([r["asha"]["best_val_acc"] for r in rows]),
        "val_acc_full": common.mean_std([r["none"]["best_val_acc"] for r in rows]),
    }
    ctx.say("")
    header = ["seed", "epochs full/ASHA", "wall full/ASHA", "val full", "val ASHA", "test full", "test ASHA"]
    for line in common.table(
        [
            [
                r["seed"],
                f"{r['none']['epochs']}/{r['asha']['epochs']} = {r['epochs_ratio']:.2f}x",
                f"{r['none']['wall_s']:.0f}/{r['asha']['wall_s']:.0f}s = {r['wall_ratio']:.2f}x",
                f"{r['none']['best_val_acc']:.3f}",
                f"{r['asha']['best_val_acc']:.3f}",
                f"{r['none']['test_acc']:.3f}",
                f"{r['asha']['test_acc']:.3f}",
            ]
            for r in rows
        ],
        header,
    ):
        ctx.say(line)
    ctx.say(
        f"mean: ASHA used {summary['epochs_ratio'][0]:.2f}x fewer epochs, {summary['wall_ratio'][0]:.2f}x less "
        f"wall time; best test_acc full {common.pm([r['none']['test_acc'] for r in rows])}, "
        f"ASHA {common.pm([r['asha']['test_acc'] for r in rows])} (ASHA paper: ~10x less compute, comparable result)"
    )
    _plot(ctx, rows)
    return {
        "sizes": size,
        "sweep": SWEEP,
        "protocol": "best trial by final val_acc; retrained on train split, full budget, own seed; test split once",
        "per_seed": rows,
        "summary": summary,
    }


def _plot(ctx: Context, rows: list[dict[str, Any]]) -> None:
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    for r in rows:
        for s, marker, color in (("none", "s", "tab:gray"), ("asha", "o", "tab:red")):
            a1.scatter(
                r[s]["epochs"],
                r[s]["test_acc"],
                marker=marker,
                color=color,
                label={"none": "full budget", "asha": "ASHA"}[s] if r is rows[0] else None,
            )
            a1.annotate(
                f"seed {r['seed']}",
                (r[s]["epochs"], r[s]["test_acc"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 2),
            )
    a1.set_xlabel("epochs consumed")
    a1.set_ylabel("best config's test_acc")
    a1.legend(fontsize=8)
    seeds = [str(r["seed"]) for r in rows]
    x = range(len(rows))
    a2.bar([i - 0.2 for i in x], [r["epochs_ratio"] for r in rows], width=0.4, label="epochs full / ASHA")
    a2.bar([i + 0.2 for i in x], [r["wall_ratio"] for r in rows], width=0.4, label="wall full / ASHA")
    a2.axhline(10, color="k", ls=":", lw=1, label="ASHA paper: ~10x")
    a2.set_xticks(list(x), [f"seed {s}" for s in seeds])
    a2.set_ylabel("ratio")
    a2.legend(fontsize=8)
    fig.suptitle("ASHA vs full-budget random search, same configurations")
    common.save(fig, ctx.png())
