"""Orchestration efficiency: what running trials through tuner and Ray costs beyond the trials.

Part 1, in one run on one Ray instance (started before anything is timed):

- a sweep of few-second trials through ``tuner.runner.run_sweep`` (random search, no early
  stopping: every trial trains its full budget): its wall time against the lower bound
  Σ(trial compute time) / CPUs, where a trial's compute time is the sum of its epochs'
  ``epoch_s`` (training + validation, measured inside the trial);
- the same configurations run by a plain hand-written Ray Tune script
  (``benchmarks/plain_ray.py``: one report per epoch, no checkpoints), once with Ray's
  defaults (a new worker process per trial) and once with ``reuse_actors=True``, each with
  the same lower bound from its own epochs.

Efficiency = lower bound / wall time (1.0: not a second beyond the trials' own work). Also
reported: how many worker processes ran the trials (actor reuse: 2 for 2 CPUs when it works).

Part 2, the scale run: one-second trials (``plain_ray.sleep_trial``: sleep 1 s, report once,
no CPU used) through the project's own path (``tuner.ray.experiment.run_experiment``: actor reuse,
progress callback, loggers), against the theoretical minimum trials × 1 s / CPUs. Ray's own
bookkeeping release test: 10,000 one-second trials on 16 CPUs in 715 s, 87% of 625 s.

Full size: 40 trials × 30 epochs of a BN-MLP [256, 256] on MNIST-1D (2-3 s a trial here);
scale run of 200 one-second trials. Quick: 4 trials × 3 epochs; 10 trials of 0.2 s.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import common, plain_ray
from benchmarks.common import Context


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"trials": 4, "epochs": 3, "scale_trials": 10, "scale_seconds": 0.2}
    return {"trials": 40, "epochs": 30, "scale_trials": 200, "scale_seconds": 1.0}


def sweep(trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "orchestration",
        "metric": "val_acc",
        "mode": "max",
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [256, 256], "batch_norm": True},
        "train": {"epochs": epochs, "batch_size": 128, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        "search": {
            "method": "random",
            "num_samples": trials,
            "seed": 0,
            "parameters": {
                "train.lr": {"distribution": "log_uniform", "min": 0.01, "max": 0.5},
                "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99},
            },
        },
        "scheduler": {"name": "none"},
        "resources": {"cpu": 1, "gpu": 0},
    }


def run(ctx: Context) -> dict[str, Any]:
    from tuner.models.data import load as load_data
    from tuner.space import apply_params
    from tuner.spec import from_dict

    size = sizes(ctx.quick)
    resources = common.ensure_ray()
    cpus = float(resources.get("CPU", 1))
    # part 1: our sweep, then the plain script on the same configurations
    raw = sweep(size["trials"], size["epochs"])
    cpu_before = time.process_time()
    ours = common.run(ctx, raw, "ours")
    driver_cpu = time.process_time() - cpu_before  # every thread of this process: Tune's driver loop
    ours_compute = common.compute_s(ours)
    overhead = common.report_overhead(ours)
    base = from_dict(raw).base_config()
    configs = [apply_params(base, t.params) for t in ours.run.trials]
    data = load_data(raw["data"]).without_test()
    plain = plain_ray.run_plain(configs, data, ctx.storage("plain"))
    plain_reuse = plain_ray.run_plain(configs, data, ctx.storage("plain-reuse"), reuse_actors=True)
    part1 = {
        "tuner": {
            "wall_s": ours.wall_s,
            "compute_s": ours_compute,
            "lower_bound_s": ours_compute / cpus,
            "efficiency": ours_compute / cpus / ours.wall_s,
            "epochs": common.epochs_of(ours),
            "trials": len(ours.run.trials),
            "worker_processes": overhead["worker_processes"],
            "report_overhead": overhead,
            "driver_cpu_s": driver_cpu,
            "driver_cpu_per_report_s": driver_cpu / max(common.epochs_of(ours), 1),
        },
        "plain_ray": {
            **plain,
            "lower_bound_s": plain["compute_s"] / cpus,
            "efficiency": plain["compute_s"] / cpus / plain["wall_s"],
        },
        "plain_ray_reuse": {
            **plain_reuse,
            "lower_bound_s": plain_reuse["compute_s"] / cpus,
            "efficiency": plain_reuse["compute_s"] / cpus / plain_reuse["wall_s"],
        },
    }
    part1["wall_ratio_tuner_to_plain"] = ours.wall_s / plain["wall_s"]
    part1["wall_ratio_tuner_to_plain_reuse"] = ours.wall_s / plain_reuse["wall_s"]
    mean_trial = ours_compute / max(len(ours.run.trials), 1)
    ctx.say(
        f"sweep of {len(ours.run.trials)} trials x {size['epochs']} epochs (mean trial compute {mean_trial:.1f}s) "
        f"on {cpus:g} CPUs:"
    )
    for key, label in (
        ("tuner", "tuner run_sweep"),
        ("plain_ray", "plain Ray Tune"),
        ("plain_ray_reuse", "plain, reuse"),
    ):
        r = part1[key]
        ctx.say(
            f"  {label:<16} wall {r['wall_s']:6.1f}s, lower bound {r['lower_bound_s']:6.1f}s -> efficiency "
            f"{r['efficiency']:.2f}; {r['worker_processes']} worker processes for {r['trials']} trials"
        )
    ctx.say(
        f"  wall time tuner / plain Ray: {part1['wall_ratio_tuner_to_plain']:.2f} (defaults), "
        f"{part1['wall_ratio_tuner_to_plain_reuse']:.2f} (reuse_actors=True)"
    )
    ctx.say(
        f"  tuner: {overhead['in_report_median_s'] * 1000:.1f} ms inside a report (median; median epoch "
        f"{overhead['median_epoch_s'] * 1000:.0f} ms), {overhead['checkpoints']} checkpoints taken, trial set-up "
        f"{overhead['median_trial_setup_s'] * 1000:.0f} ms (median), {overhead['max_trial_setup_s']:.1f}s (a worker's "
        f"first trial)"
    )
    ctx.say(
        f"  tuner: the driver process used {driver_cpu:.1f}s of CPU ({driver_cpu / max(common.epochs_of(ours), 1) * 1000:.1f} "
        f"ms a report) while the trials computed {ours_compute:.1f}s"
    )
    # part 2: the scale run of sleeping trials through our backend
    part2 = scale(ctx, size["scale_trials"], size["scale_seconds"], cpus)
    ctx.say(
        f"scale run: {part2['trials']} trials of {part2['seconds']:g}s on {cpus:g} CPUs in {part2['wall_s']:.1f}s; "
        f"theoretical minimum {part2['minimum_s']:.1f}s -> {part2['efficiency']:.0%} "
        f"(Ray's release test: 87%, 10,000 trials on 16 CPUs)"
    )
    _plot(ctx, part1, part2)
    return {
        "sizes": size,
        "cpus": cpus,
        "sweep": part1,
        "scale": part2,
        "ray_release_test": {"trials": 10000, "cpus": 16, "minimum_s": 625, "wall_s": 715, "efficiency": 0.874},
    }


def scale(ctx: Context, trials: int, seconds: float, cpus: float) -> dict[str, Any]:
    """``trials`` sleeping trials through ``tuner.ray.experiment.run_experiment``
    (``driver_scale.ours``)."""
    from benchmarks import driver_scale

    row = driver_scale.ours(ctx, trials, seconds, int(cpus), label="scale")
    return {k: row[k] for k in ("trials", "seconds", "wall_s", "minimum_s", "efficiency")}


def _plot(ctx: Context, part1: dict[str, Any], part2: dict[str, Any]) -> None:
    plt = common.pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = ["tuner", "plain Ray Tune", "plain, reuse_actors"]
    rows = [part1["tuner"], part1["plain_ray"], part1["plain_ray_reuse"]]
    xs = list(range(len(rows)))
    a1.bar(xs, [r["wall_s"] for r in rows], width=0.5, color=["tab:blue", "tab:gray", "0.75"], label="wall time")
    a1.bar(xs, [r["lower_bound_s"] for r in rows], width=0.25, color="k", alpha=0.35, label="Σ trial compute / CPUs")
    for i, r in enumerate(rows):
        a1.annotate(f"{r['efficiency']:.0%}", (i, r["wall_s"]), ha="center", textcoords="offset points", xytext=(0, 2))
    a1.set_xticks(xs, labels, fontsize=8)
    a1.set_ylabel("seconds")
    a1.set_title(f"{part1['tuner']['trials']} few-second trials")
    a1.legend(fontsize=8)
    a2.bar([0, 1], [part2["efficiency"], 0.874], width=0.5, color=["tab:blue", "tab:gray"])
    a2.set_xticks(
        [0, 1], [f"tuner\n{part2['trials']} x {part2['seconds']:g}s", "Ray release test\n10,000 x 1s, 16 CPUs"]
    )
    a2.set_ylim(0, 1)
    a2.set_ylabel("theoretical minimum / wall time")
    a2.set_title("scale run: one-second trials")
    common.save(fig, ctx.png())
