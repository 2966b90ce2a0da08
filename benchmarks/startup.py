"""Fixed costs: ``tuner run`` end to end against the same sweep in one Optuna process.

Both run as commands from a fresh interpreter, alternated A B A B on this machine: ``tuner run``
of a 32-trial × 20-epoch MNIST-1D BN-MLP sweep (log-uniform lr, 1 − β momentum, ASHA grace 1,
η 3; a local Ray instance of its own) and ``benchmarks/optuna_peer.py`` (the same space, loop and
pruning rungs, two threads). Figures: each one's wall time and their ratio (goal: tuner within
1.5× of Optuna), tuner's time before its first trial broken down from ``run.json``'s timings
(interpreter and imports, data, Ray's start, the experiment's set-up, the first trial's worker),
and the share of the run with no trial running — for this sweep and for ``sweeps/quickstart.yaml``
(goal: under 15%).

A third command runs the same ``tuner run`` on the local instance ``tuner up`` keeps (the way to
tune again and again on one machine: each command joins it instead of starting Ray), and the
quickstart runs both ways too.

Full size: 2 × (tuner, Optuna, tuner on tuner up's instance) and the quickstart both ways.
Quick: 4 trials × 2 epochs, once, no quickstart.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, Context

GOAL_RATIO = 1.5
GOAL_IDLE = 0.15


def sweep(trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "startup",
        "metric": "val_acc",
        "mode": "max",
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [256, 256], "batch_norm": True},
        "train": {
            "epochs": epochs,
            "batch_size": 128,
            "optimizer": "sgd",
            "lr": 0.1,
            "lr_schedule": "cosine",
            "momentum": 0.9,
            "weight_decay": 1e-4,
        },
        "search": {
            "method": "random",
            "num_samples": trials,
            "seed": 0,
            "parameters": {
                "train.lr": {"distribution": "log_uniform", "min": 0.01, "max": 1.0},
                "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99},
            },
        },
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
        "resources": {"cpu": 1, "gpu": 0},
    }


def trial_intervals(run_dir: Path) -> list[tuple[float, float]]:
    """Each trial's (start, end) in epoch seconds: from the driver's clock as each result came
    in (the ``wall_time`` of the trial's TensorBoard events, to the microsecond) less the first
    report's ``time_this_iter_s`` (the trial's time from its first step: its process, started
    before, is not counted as running). Without events, from Ray's ``timestamp`` of each result,
    whole seconds (each span up to 1 s early)."""
    spans = []
    for result in run_dir.glob("trials/*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        ends = result_times(result.parent) or [float(r.get("timestamp", 0)) for r in rows]
        spans.append((ends[0] - float(rows[0].get("time_this_iter_s", 0.0)), max(ends)))
    return spans


def result_times(trial_dir: Path) -> list[float]:
    """When the driver logged each of a trial's results (epoch seconds, in order), from the
    trial's TensorBoard event files (TFRecord framing: length, its CRC, the event, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    times: set[float] = set()
    for path in trial_dir.glob("events.out.tfevents.*"):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            if event.step > 0 and any(v.tag.startswith("ray/tune/") for v in event.summary.value):
                times.add(event.wall_time)
    return sorted(times)


def busy_union(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds in [lo, hi] during which at least one trial ran."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted((max(s, lo), min(e, hi)) for s, e in spans if e > lo and s < hi):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def run_tuner(
    ctx: Context, sweep_file: Path, label: str, cache: Path, address: str | None = None, prelude: str | None = None
) -> dict[str, Any]:
    """``tuner run`` from a fresh interpreter with ``cache`` as its ``$TUNER_CACHE`` (where the
    record of an instance ``tuner up`` keeps is looked for); with ``prelude``, the command is
    started by ``python -c`` after that code (``pass``: as is), as ``startup_ab`` undoes a change."""
    storage = ctx.storage(label)
    args = ["run", str(sweep_file), "--storage", str(storage), "--json"]
    if prelude is None:
        command = [sys.executable, "-m", "tuner", *args]
    else:
        launch = f"{prelude}\nimport sys\nfrom tuner.__main__ import entry\nsys.argv[0] = 'tuner'\nentry()"
        command = [sys.executable, "-c", launch, *args]
    env = {**os.environ, "TUNER_CACHE": str(cache)}
    start, summary, end = last_json_line("tuner run", command + (["--address", address] if address else []), env)
    run_dir = Path(summary["run_dir"])
    timings = json.loads((run_dir / "run.json").read_text())["timings"]
    spans = trial_intervals(run_dir)
    first = min(s for s, _ in spans)
    t0 = timings.get("process", start)
    phases = {
        "imports": timings["sweep_loaded"] - t0,
        "data": timings["data_loaded"] - timings["sweep_loaded"],
        "ray_start": timings["ray_ready"] - timings["data_loaded"],
        "experiment_setup": timings["experiment_started"] - timings["ray_ready"],
        "first_trial_wait": first - timings["experiment_started"],
        "after_experiment": end - timings["experiment_ended"],
    }
    busy = busy_union(spans, t0, end)
    epochs = sum(1 for f in run_dir.glob("trials/*/result.json") for line in f.read_text().splitlines() if line.strip())
    return {
        "wall_s": end - start,
        "phases_s": phases,
        "idle_share": 1 - busy / (end - t0),
        "epochs": epochs,
        "best": summary["best"],
    }


def run_optuna(trials: int, epochs: int) -> dict[str, Any]:
    peer = [
        sys.executable,
        str(ROOT / "benchmarks" / "optuna_peer.py"),
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
    ]
    start, out, end = last_json_line("optuna peer", peer)
    return {"wall_s": end - start, **{k: v for k, v in out.items() if k != "wall_s"}}


def last_json_line(
    what: str, command: list[str], env: dict[str, str] | None = None
) -> tuple[float, dict[str, Any], float]:
    """Run ``command`` from a fresh interpreter in the project's root: (its start time, the
    JSON of its last output line, its end time); a failure raises with its stderr's tail."""
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return start, json.loads(proc.stdout.strip().splitlines()[-1]), end


@contextlib.contextmanager
def cache_env(cache: Path) -> Iterator[None]:
    """``$TUNER_CACHE`` set to ``cache`` in this process for the block (where tuner generates
    data and records the instance ``tuner up`` keeps), and put back as it was after."""
    saved = os.environ.get("TUNER_CACHE")
    os.environ["TUNER_CACHE"] = str(cache)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TUNER_CACHE", None)
        else:
            os.environ["TUNER_CACHE"] = saved


@contextlib.contextmanager
def ray_instance_up(cache: Path, cpus: int) -> Iterator[str]:
    """The local Ray instance ``tuner up`` keeps (recorded under ``cache``, never the user's own
    ``$TUNER_CACHE``), as a user who tunes again and again would keep one; yields its address,
    stops it (``tuner down``) after."""
    from tuner.ray import instance

    with cache_env(cache):
        inst, _ = instance.start(num_cpus=cpus, num_gpus=0)
        try:
            yield inst.address
        finally:
            instance.stop()


def settle(cache: Path, timeout: float = 60.0) -> float:
    """Wait until the workers ``tuner up``'s instance (recorded under ``cache``) keeps warm have
    started and imported what they preload (their CPU time all but stops growing), so that
    no measured command shares the cores with them, as a user's next run would not (BENCHMARKS.md
    i); returns the seconds waited."""
    from tuner.ray import instance, prestart

    with cache_env(cache):
        inst = instance.running()
    started = time.monotonic()
    if inst is None:
        return 0.0

    def cpu_ticks() -> tuple[int, int]:
        pids = prestart.idle_pids(inst.pid)
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, ValueError, IndexError):
                continue
        return len(pids), total

    quiet = max(1, os.sysconf("SC_CLK_TCK") // 20)  # under 5% of a core: Ray's own background threads
    last = cpu_ticks()
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = cpu_ticks()
        if now[0] > 0 and now[0] == last[0] and now[1] - last[1] < quiet:
            break
        last = now
    return time.monotonic() - started


def warm_cache(cache: Path, sweep_files: list[Path]) -> None:
    """Generate the sweeps' data into ``cache`` (MNIST-1D is generated once a cache), so that
    no measured command pays it."""
    from tuner import datasets
    from tuner.spec import load_sweep

    with cache_env(cache):
        for path in sweep_files:
            datasets.load(load_sweep(path))


def run(ctx: Context) -> dict[str, Any]:
    trials, epochs, repeats = (4, 2, 1) if ctx.quick else (32, 20, 2)
    sweep_file = ctx.storage("sweep") / "startup.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep(trials, epochs), sort_keys=False))
    rows: dict[str, list[dict[str, Any]]] = {"tuner": [], "optuna": [], "tuner_ray_up": []}
    own, kept = ctx.storage("cache-own"), ctx.storage("cache-up")  # no instance recorded / tuner up's
    quickstart = ROOT / "sweeps" / "quickstart.yaml"
    for cache in (own, kept):
        warm_cache(cache, [sweep_file, quickstart])
    out: dict[str, Any] = {"sizes": {"trials": trials, "epochs": epochs, "repeats": repeats}, "rows": rows}
    with ray_instance_up(kept, os.cpu_count() or 2):
        settle(kept)  # its warm workers started: nothing measured shares the cores with them
        for rep in range(repeats):
            rows["tuner"].append(run_tuner(ctx, sweep_file, f"tuner-{rep}", own))
            rows["optuna"].append(run_optuna(trials, epochs))
            rows["tuner_ray_up"].append(run_tuner(ctx, sweep_file, f"tuner-up-{rep}", kept))
            settle(kept)
            t, o, u = rows["tuner"][-1], rows["optuna"][-1], rows["tuner_ray_up"][-1]
            for label, r in (("tuner run", t), ("tuner run, tuner up's instance", u)):
                phases = ", ".join(f"{k} {v:.1f}s" for k, v in r["phases_s"].items())
                ctx.say(
                    f"round {rep + 1}: {label} {r['wall_s']:.1f}s ({r['epochs']} epochs; no trial running "
                    f"{r['idle_share']:.0%}: {phases}); ratio to optuna {r['wall_s'] / o['wall_s']:.2f}"
                )
            ctx.say(f"round {rep + 1}: optuna {o['wall_s']:.1f}s ({o['epochs']} epochs, {o['pruned']} pruned)")
        if not ctx.quick:
            for key, cache in (("quickstart", own), ("quickstart_ray_up", kept)):
                quick = run_tuner(ctx, quickstart, key, cache)
                settle(kept)
                out[key] = quick
                ctx.say(
                    f"{key}: {quick['wall_s']:.1f}s end to end, no trial running {quick['idle_share']:.0%} of it "
                    f"(goal < {GOAL_IDLE:.0%}): " + ", ".join(f"{k} {v:.1f}s" for k, v in quick["phases_s"].items())
                )
    ratio = sum(r["wall_s"] for r in rows["tuner"]) / sum(r["wall_s"] for r in rows["optuna"])
    ratio_up = sum(r["wall_s"] for r in rows["tuner_ray_up"]) / sum(r["wall_s"] for r in rows["optuna"])
    ctx.say(f"tuner / optuna wall time: {ratio:.2f}; with a Ray instance up: {ratio_up:.2f} (goal <= {GOAL_RATIO})")
    out.update(ratio=ratio, ratio_ray_up=ratio_up)
    return out
