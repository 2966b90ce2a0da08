"""Run directories written by hand for the report's tests, with the clock times Ray Tune
stamps on each report: two workers (pids 1000 and 1001) on one node run the trials in turn,
one second an epoch, the first trial starting 5.3 s after the run was created."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs
from tuner.spec import from_dict

CREATED = "2026-01-01T00:00:00+00:00"
T0 = dt.datetime.fromisoformat(CREATED).timestamp()
START_S = 5.3  # start-up before the first trial (Ray and its workers starting)
GAP_S = 0.25  # between two trials on one worker
EPOCH_S = 1.0
NODE = "node-aaaaaaaaaaaa"

LR = {"distribution": "log_uniform", "min": 1e-3, "max": 0.5}
MOMENTUM = {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99}
HIDDEN = {"values": [[8], [16]]}


def write_run(
    root: Path,
    trials: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    sweep: dict[str, Any] | None = None,
    *,
    error_for: set[int] = frozenset(),  # type: ignore[assignment]
    rounds: list[dict[str, Any]] | None = None,
    round_of: list[int] | None = None,
    status: str = "done",
    clock: bool = True,
) -> Path:
    """A run directory; each trial is (params, per-epoch metrics). Trial i runs on worker
    i % 2 after that worker's previous trial; ``clock=False`` leaves Ray's clock keys out."""
    run_dir = root / "run"
    resolved = from_dict(sweep or tiny_sweep(), source="sweep.yaml", offline=True)
    (run_dir / "round-0").mkdir(parents=True)
    (run_dir / "sweep.yaml").write_text(yaml.safe_dump(resolved.to_dict(), sort_keys=False))
    meta_rounds = [
        {"index": i, "dir": f"round-{i}", "seed": i, "num_samples": 4, "parameters": p, "status": "done"}
        for i, p in enumerate(rounds or [{}])
    ]
    meta = {
        "name": "handmade",
        "status": status,
        "created": CREATED,
        "finished": None if status == "running" else "2026-01-01T00:01:00+00:00",
        "cluster": {"address": "local", "CPU": 2.0},
        "rounds": meta_rounds,
        "provenance": {"sweep_sha256": "ab" * 32, "git_commit": "0123abc", "versions": {"ray": "2.60.0"}},
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    free = [T0 + START_S, T0 + START_S + 0.1]  # when each worker is next free (clock seconds)
    for i, (params, history) in enumerate(trials):
        r = round_of[i] if round_of else 0
        d = run_dir / f"round-{r}" / f"run_trial_abcde_{i:05d}_{i}_x=1_2026-01-01_00-00-00"
        d.mkdir(parents=True, exist_ok=True)
        (d / "params.json").write_text(json.dumps(params))
        worker = i % 2
        start = free[worker]
        lines = []
        for k, h in enumerate(history, start=1):
            row = {**h, "trial_id": f"abcde_{i:05d}", "node_ip": "10.0.0.1", "hostname": "h", "config": params}
            if clock:
                total = k * EPOCH_S
                row |= {
                    "time_total_s": total,
                    "time_this_iter_s": EPOCH_S,
                    "timestamp": math.floor(start + total),
                    "pid": 1000 + worker,
                    "node_id": NODE,
                }
            lines.append(json.dumps(row))
        free[worker] = start + len(history) * EPOCH_S + GAP_S
        (d / "result.json").write_text("\n".join(lines) + ("\n" if lines else ""))
        if i in error_for:
            (d / "error.txt").write_text("Traceback...\nRuntimeError: boom\n")
    return run_dir


def mixed_run(root: Path, **kwargs: Any) -> Path:
    """Two rounds; finished, stopped, diverged and failed trials; a categorical parameter.
    ASHA (grace 1, η 2) over 4 epochs: rungs at epochs 1 and 2."""
    params = {"train.lr": LR, "train.momentum": MOMENTUM, "model.hidden": HIDDEN}
    narrow = {
        "train.lr": {"distribution": "log_uniform", "min": 0.01, "max": 0.1},
        "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.8, "max": 0.95},
        "model.hidden": HIDDEN,
    }
    trials = [
        ({"train.lr": 0.05, "train.momentum": 0.9, "model.hidden": [16]}, epochs(0.5, 0.7, 0.8, 0.85)),
        ({"train.lr": 0.002, "train.momentum": 0.6, "model.hidden": [8]}, epochs(0.3)),
        ({"train.lr": 0.4, "train.momentum": 0.98, "model.hidden": [8]}, epochs(0.2, diverged_at=2)),
        ({"train.lr": 0.01, "train.momentum": 0.7, "model.hidden": [16]}, epochs(0.4, 0.5)),
        ({"train.lr": 0.03, "train.momentum": 0.85, "model.hidden": [16]}, epochs(0.6, 0.75, 0.8, 0.9)),
        ({"train.lr": 0.08, "train.momentum": 0.93, "model.hidden": [8]}, epochs(0.55)),
    ]
    sweep = tiny_sweep(
        **{"train.epochs": 4, "search.parameters": params, "scheduler.grace_period": 1, "scheduler.reduction_factor": 2}
    )
    return write_run(root, trials, sweep, error_for={3}, rounds=[params, narrow], round_of=[0, 0, 0, 0, 1, 1], **kwargs)


def lr_matters_run(root: Path, n: int = 24) -> Path:
    """``n`` trials whose val_acc at every epoch is set by the learning rate alone (best near
    0.03), while the half with momentum > 0.9 go on to epoch 4 and gain 0.3 there: their *last*
    scores are set by momentum, their scores at a common epoch by the learning rate."""
    import numpy as np

    rng = np.random.default_rng(0)
    trials = []
    for _ in range(n):
        lr = float(10 ** rng.uniform(-3, math.log10(0.5)))
        mom = float(1 - 10 ** rng.uniform(-2, math.log10(0.5)))
        base = 0.6 - 0.15 * (math.log10(lr) - math.log10(0.03)) ** 2
        accs = [base - 0.02, base] + ([base + 0.3, base + 0.3] if mom > 0.9 else [])
        trials.append(
            ({"train.lr": lr, "train.momentum": mom, "model.hidden": [[8], [16]][int(rng.integers(2))]}, epochs(*accs))
        )
    params = {"train.lr": LR, "train.momentum": MOMENTUM, "model.hidden": HIDDEN}
    sweep = tiny_sweep(
        **{"train.epochs": 4, "search.parameters": params, "scheduler.grace_period": 2, "scheduler.reduction_factor": 2}
    )
    return write_run(root, trials, sweep)


def function_run(root: Path, **kwargs: Any) -> Path:
    """A user's own function minimising val_rmse; searched optim.lr (no train.lr) and a list
    of widths; no momentum-like β."""
    sweep = {
        "name": "regression",
        "metric": "val_rmse",
        "mode": "min",
        "function": "train:fit",
        "config": {"epochs": 3, "optim": {"lr": 0.03}, "hidden": [8]},
        "search": {
            "num_samples": 4,
            "parameters": {"optim.lr": LR, "hidden": {"values": [[8], [16, 16]]}},
        },
        "scheduler": {"name": "asha", "max_t": 3, "grace_period": 1, "reduction_factor": 3},
    }
    rows = [
        ({"optim.lr": 0.01, "hidden": [8]}, [{"epoch": e, "val_rmse": 60.0 - 5 * e} for e in (1, 2, 3)]),
        ({"optim.lr": 0.1, "hidden": [16, 16]}, [{"epoch": 1, "val_rmse": 70.0}]),
        ({"optim.lr": 0.003, "hidden": [16, 16]}, [{"epoch": e, "val_rmse": 58.0 - 3 * e} for e in (1, 2, 3)]),
        # diverged at epoch 2: a non-finite metric is written as null
        (
            {"optim.lr": 0.4, "hidden": [8]},
            [{"epoch": 1, "val_rmse": 80.0}, {"epoch": 2, "val_rmse": None, "diverged": True}],
        ),
    ]
    return write_run(root, rows, sweep, **kwargs)


def all_diverged_run(root: Path, **kwargs: Any) -> Path:
    """A user's function with no stated budget (no ASHA, no epochs) minimising val_loss whose
    every trial diverged (after 1, 2 and 3 epochs): every val_loss it reported is +inf, so no
    trial has a finite score."""
    sweep = {
        "name": "alldiv",
        "metric": "val_loss",
        "mode": "min",
        "function": "train:fit",
        "config": {"optim": {"lr": 0.03}},
        "search": {"num_samples": 3, "parameters": {"optim.lr": LR}},
        "scheduler": {"name": "none"},
    }
    rows = [
        ({"optim.lr": lr}, [{"epoch": e, "val_loss": math.inf, "diverged": e == n} for e in range(1, n + 1)])
        for lr, n in ((0.1, 1), (0.2, 2), (0.4, 3))
    ]
    return write_run(root, rows, sweep, **kwargs)
