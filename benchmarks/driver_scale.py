"""Driver scale: the driver's cost per trial stays flat from hundreds to ten thousand trials.

Sleeping trials (``plain_ray.sleep_fit``: sleep, report once, no CPU used) isolate what the
driver and Ray's bookkeeping cost: Ray's own release test runs 10,000 one-second trials on 16
CPUs (minimum 625 s) in 715 s, efficiency 0.87. Each size runs twice, in one process on one
Ray instance of ``--num-cpus`` logical CPUs (sleeping trials need no real cores): through
tuner's own path (``tuner.ray.experiment.run_experiment``: the round searcher, ASHA's state,
the progress, TensorBoard and outcome callbacks, result batching, snapshots for ``tuner
resume``) and through a plain Ray Tune script with actor reuse (``plain_ray.run_sleep``).
Figures: wall time, efficiency = trials × seconds / CPUs / wall, and the driver's CPU seconds
per trial (this process's CPU time: Tune's loop runs in it).

Full size (``--full``): 200 and 10,000 one-second trials on 16 CPUs (about 25 minutes).
Default: 200 and 2,000 half-second trials on 16 CPUs. Quick: 40 and 200 trials of 0.1 s on 8 CPUs.
``TUNER_SCALE=200,1000:0.5:4``: other sizes (trial counts, seconds a trial, logical CPUs);
``TUNER_SCALE_WAYS=tuner``: tuner's path alone (the plain script churns actors at 10,000 trials).
Run it alone: the first connection of the process starts Ray with the CPUs it needs.
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks import plain_ray
from benchmarks.common import Context, round_settings

GOAL_EFFICIENCY = 0.87  # Ray's release test at 10,000 trials
GOAL_CPU_RATIO = 1.5  # driver CPU a trial at the largest size over that at the smallest
IMPORT_TORCH = False  # each sleeping trial imports torch first (driver_ab's "torch" undone)


def sizes(ctx: Context) -> dict[str, Any]:
    if ctx.quick:
        return {"trials": [40, 200], "seconds": 0.1, "cpus": 8}
    custom = os.environ.get("TUNER_SCALE")  # e.g. "200,1000:0.5:4": trial counts, seconds, CPUs
    if custom:
        try:
            counts, seconds, cpus = custom.split(":")
            return {"trials": [int(n) for n in counts.split(",")], "seconds": float(seconds), "cpus": int(cpus)}
        except ValueError:
            raise SystemExit(f"TUNER_SCALE: {custom[:60]!r} must be COUNTS:SECONDS:CPUS, e.g. 200,1000:0.5:4") from None
    if os.environ.get("TUNER_BENCH_FULL"):
        return {"trials": [200, 10_000], "seconds": 1.0, "cpus": 16}
    return {"trials": [200, 2_000], "seconds": 0.5, "cpus": 16}


def ours(ctx: Context, trials: int, seconds: float, cpus: int, label: str = "") -> dict[str, Any]:
    """``trials`` sleeping trials through tuner's experiment path (run directories under
    ``ours-TRIALS``, or ``label``); with :data:`IMPORT_TORCH` set each trial imports torch first."""
    from tuner.ray import experiment
    from tuner.space import Parameter

    trial_args = {
        "function": "benchmarks.plain_ray:sleep_fit",
        "base": {"seconds": seconds, "x": 0.0, "import_torch": IMPORT_TORCH},
        "data": None,
        "metric": "val_acc",
        "mode": "max",
        "seed": 0,
    }
    storage = ctx.storage(label or f"ours-{trials}")
    settings = round_settings(
        storage, "trials", trial_args, [Parameter("x", "uniform", 0.0, 1.0)], trials, label="scale"
    )
    start, cpu = time.monotonic(), time.process_time()
    experiment.run_experiment(settings)
    row = _figures(trials, seconds, cpus, time.monotonic() - start, time.process_time() - cpu)
    return {**row, **_workers(settings.storage)}


def _workers(storage: Any) -> dict[str, Any]:
    """How many worker processes ran trials (``cpus`` of them when none was lost while starting),
    the median CPU seconds one had spent before its first trial (its start and imports), when
    the first trial began and the last reported (seconds from the experiment's first trial),
    and the mean and 90th percentile of a worker's gap from one trial's report to the next
    trial's start (the driver's round trips and Tune's reset of the worker)."""
    import json
    import statistics
    from pathlib import Path

    first: dict[int, float] = {}
    spans: dict[int, list[tuple[float, float]]] = {}
    for path in Path(storage).glob("*/*/result.json"):
        for line in path.read_text().splitlines()[:1]:
            r = json.loads(line)
            if "pid" in r and "process_cpu_s" in r:
                first[r["pid"]] = min(first.get(r["pid"], float("inf")), float(r["process_cpu_s"]))
            if "pid" in r and "began" in r:
                spans.setdefault(r["pid"], []).append((float(r["began"]), float(r["reported"])))
    for runs in spans.values():
        runs.sort()
    gaps = sorted(b[0] - a[1] for runs in spans.values() for a, b in zip(runs, runs[1:], strict=False))
    t0 = min((s for runs in spans.values() for s, _ in runs), default=0.0)
    return {
        "workers": len(first),
        "worker_start_cpu_s": statistics.median(first.values()) if first else None,
        "last_first_trial_s": max(runs[0][0] for runs in spans.values()) - t0 if spans else None,
        "last_report_s": max(e for runs in spans.values() for _, e in runs) - t0 if spans else None,
        "gap_mean_ms": statistics.fmean(gaps) * 1000 if gaps else None,
        "gap_p90_ms": gaps[int(0.9 * (len(gaps) - 1))] * 1000 if gaps else None,
    }


def _figures(trials: int, seconds: float, cpus: int, wall: float, cpu: float) -> dict[str, Any]:
    minimum = trials * seconds / cpus
    return {
        "trials": trials,
        "seconds": seconds,
        "wall_s": wall,
        "minimum_s": minimum,
        "efficiency": minimum / wall,
        "driver_cpu_s": cpu,
        "driver_cpu_per_trial_ms": cpu / trials * 1000,
    }


def _workers_said(row: dict[str, Any]) -> str:
    if not row.get("workers"):
        return ""
    said = f"; {row['workers']} worker processes, {row['worker_start_cpu_s']:.1f} CPU-s each before its first trial"
    if row.get("gap_mean_ms") is not None:
        said += (
            f"; all busy {row['last_first_trial_s']:.1f}s after the first trial began; a worker's gap between "
            f"trials {row['gap_mean_ms']:.0f} ms (p90 {row['gap_p90_ms']:.0f} ms)"
        )
    return said


def run(ctx: Context) -> dict[str, Any]:
    from tuner.ray import cluster

    size = sizes(ctx)
    resources = cluster.connect(num_cpus=size["cpus"])
    cpus = int(resources.get("CPU", size["cpus"]))
    if cpus != size["cpus"]:
        ctx.say(f"note: Ray was already up with {cpus} CPUs (run this benchmark alone for {size['cpus']})")
    ways = os.environ.get("TUNER_SCALE_WAYS", "tuner,plain_ray_reuse").split(",")
    if not set(ways) <= {"tuner", "plain_ray_reuse"} or not ways:
        raise SystemExit(f"TUNER_SCALE_WAYS: {','.join(ways)[:60]!r} must name tuner and/or plain_ray_reuse")
    rows: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for n in size["trials"]:
        for way in rows:
            if way == "tuner":
                row = ours(ctx, n, size["seconds"], cpus)
            else:
                start, cpu = time.monotonic(), time.process_time()
                plain_ray.run_sleep(n, size["seconds"], ctx.storage(f"plain-{n}"))
                row = _figures(n, size["seconds"], cpus, time.monotonic() - start, time.process_time() - cpu)
            rows[way].append(row)
            ctx.say(
                f"{way:<16} {n:>6} trials of {size['seconds']:g}s on {cpus} CPUs: wall {row['wall_s']:7.1f}s "
                f"(minimum {row['minimum_s']:.1f}s) -> efficiency {row['efficiency']:.2f}; driver CPU "
                f"{row['driver_cpu_per_trial_ms']:.1f} ms a trial" + _workers_said(row)
            )
    summary = {}
    for way, rs in rows.items():
        growth = rs[-1]["driver_cpu_per_trial_ms"] / max(rs[0]["driver_cpu_per_trial_ms"], 1e-9)
        summary[way] = {"efficiency_at_largest": rs[-1]["efficiency"], "driver_cpu_growth": growth}
        ctx.say(
            f"{way}: efficiency at {rs[-1]['trials']} trials {rs[-1]['efficiency']:.2f} (goal >= "
            f"{GOAL_EFFICIENCY}); driver CPU a trial x{growth:.2f} from {rs[0]['trials']} to {rs[-1]['trials']} "
            f"trials (goal <= {GOAL_CPU_RATIO})"
        )
    ratio = None
    if len(rows) == 2:
        ratio = rows["tuner"][-1]["wall_s"] / rows["plain_ray_reuse"][-1]["wall_s"]
        ctx.say(f"wall time tuner / plain Ray at {rows['tuner'][-1]['trials']} trials: {ratio:.2f}")
    return {
        "sizes": size,
        "cpus": cpus,
        "rows": rows,
        "summary": summary,
        "wall_ratio_tuner_to_plain": ratio,
        "ray_release_test": {"trials": 10000, "cpus": 16, "minimum_s": 625, "wall_s": 715, "efficiency": 0.874},
    }
