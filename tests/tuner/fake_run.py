"""A run directory written by hand, in the layout Ray Tune and the runner leave behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import tiny_sweep
from tuner.spec import from_dict


def make_run(root: Path, trials: list[tuple[dict[str, Any], list[dict[str, Any]]]], epochs: int = 3,
             error_for: set[int] | None = None) -> Path:
    """A run of one round; each trial is (params, per-epoch metrics)."""
    run_dir = root / "run"
    sweep = from_dict(tiny_sweep(**{"train.epochs": epochs}), source="tiny.yaml").to_dict()
    (run_dir / "round-0").mkdir(parents=True)
    (run_dir / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    meta = {"name": "tiny", "status": "done", "rounds": [{"index": 0, "dir": "round-0", "status": "done"}],
            "provenance": {"sweep_sha256": "ab" * 32, "versions": {"ray": "2.60.0"}}}
    (run_dir / "run.json").write_text(json.dumps(meta))
    for i, (params, history) in enumerate(trials):
        d = run_dir / "round-0" / f"run_trial_abcde_{i:05d}_{i}_x=1_2026-01-01_00-00-00"
        d.mkdir()
        (d / "params.json").write_text(json.dumps(params))
        lines = [json.dumps({**h, "trial_id": f"abcde_{i:05d}", "node_ip": "10.0.0.1", "hostname": "h",
                             "time_total_s": float(h["epoch"]), "config": params}) for h in history]
        (d / "result.json").write_text("\n".join(lines) + ("\n" if lines else ""))
        if error_for and i in error_for:
            (d / "error.txt").write_text("Traceback...\nRuntimeError: boom\n")
    return run_dir


def epochs(*accs: float, diverged_at: int | None = None) -> list[dict[str, Any]]:
    out = []
    for e, acc in enumerate(accs, start=1):
        out.append({"epoch": e, "val_acc": acc, "val_loss": 1 - acc, "train_loss": 1 - acc, "diverged": False})
    if diverged_at is not None:
        out.append({"epoch": diverged_at, "val_acc": 0.0, "val_loss": float("inf"), "train_loss": float("inf"),
                    "diverged": True})
    return out
