"""Refine rounds without a restart: a 3-round sweep's wall time, one experiment (now) against
one experiment a round (before).

Before: each round was a Ray Tune experiment of its own, so every round started its workers
again (and paid their imports of torch and tuner). Now every round runs in one experiment on
the same workers; the searcher narrows the ranges between rounds. "Before" is tuner as of commit
``e648132`` (the last with an experiment a round), extracted with ``git archive`` into the
benchmark's scratch folder and run from there; "now" is this tree. Both are ``tuner run`` of the
same sweep from a fresh interpreter, alternated A B A B; each run's own wall time from its
``run.json`` (created → finished) and the command's.

Full size: 3 rounds (12 + 6 + 6 trials × 4 epochs, BN-MLP on MNIST-1D), twice each way.
Quick: 3 rounds of 2 trials × 1 epoch, once each way.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, Context

BEFORE = "e648132"


def sweep(first: int, then: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "refine",
        "metric": "val_acc",
        "mode": "max",
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "model": {"name": "mlp", "hidden": [128, 128], "batch_norm": True},
        "train": {"epochs": epochs, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
        "search": {
            "method": "random",
            "num_samples": first,
            "seed": 0,
            "parameters": {
                "train.lr": {"distribution": "log_uniform", "min": 0.01, "max": 1.0},
                "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99},
            },
            "refine": {"rounds": 2, "top_k": 3, "num_samples": then},
        },
        "scheduler": {"name": "none"},
        "resources": {"cpu": 1, "gpu": 0},
    }


def checkout(ctx: Context) -> Path:
    """The tree of commit BEFORE, with its models/ where its tuner imports them (tuner.models)."""
    target = ctx.scratch / "before"
    if target.exists():
        return target
    data = subprocess.run(["git", "archive", "--format=tar", BEFORE], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    shutil.copytree(target / "models", target / "tuner" / "models")
    return target


def run_one(ctx: Context, sweep_file: Path, label: str, tree: Path | None) -> dict[str, Any]:
    storage = ctx.storage(label)
    env = dict(os.environ)
    if tree is not None:  # the old tree first on the path: its tuner, not the installed one
        env["PYTHONPATH"] = str(tree)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(sweep_file), "--storage", str(storage)],
        capture_output=True,
        text=True,
        cwd=tree or ROOT,
        env=env,
    )
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: tuner run failed: {proc.stderr[-2000:]}")
    meta = json.loads(next(storage.glob("*/run.json")).read_text())
    created = dt.datetime.fromisoformat(meta["created"])
    finished = dt.datetime.fromisoformat(meta["finished"])
    return {"command_s": wall, "run_s": (finished - created).total_seconds(), "rounds": len(meta["rounds"])}


def run(ctx: Context) -> dict[str, Any]:
    first, then, epochs, repeats = (2, 2, 1, 1) if ctx.quick else (12, 6, 4, 2)
    sweep_file = ctx.storage("sweep") / "refine.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep(first, then, epochs), sort_keys=False))
    before = checkout(ctx)
    rows: dict[str, list[dict[str, Any]]] = {"before (an experiment a round)": [], "now (one experiment)": []}
    for rep in range(repeats):
        for way, tree in zip(rows, (before, None)):
            row = run_one(ctx, sweep_file, f"{'before' if tree else 'now'}-{rep}", tree)
            rows[way].append(row)
            ctx.say(
                f"{way:<31} run {rep + 1}: {row['rounds']} rounds, {row['run_s']:.1f}s in run.json, "
                f"{row['command_s']:.1f}s the command"
            )
    mean = {way: sum(r["command_s"] for r in rs) / len(rs) for way, rs in rows.items()}
    (b, bm), (n, nm) = mean.items()
    ctx.say(f"mean command time {b}: {bm:.1f}s, {n}: {nm:.1f}s -> {bm / nm:.2f}x")
    return {
        "sizes": {"first": first, "then": then, "epochs": epochs, "repeats": repeats},
        "rows": rows,
        "mean_command_s": mean,
        "speedup": bm / nm,
        "before_commit": BEFORE,
    }
