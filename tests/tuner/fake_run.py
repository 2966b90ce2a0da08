"""A run directory written by hand, in the layout Ray Tune and the runner leave behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import tiny_sweep
from tuner import export_file as export_mod
from tuner.results import load_run
from tuner.spec import from_dict


def make_run(
    root: Path,
    trials: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    epochs: int = 3,
    error_for: set[int] | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    rounds: list[dict[str, Any]] | None = None,
    round_of: list[int] | None = None,
) -> Path:
    """A run; each trial is (params, per-epoch metrics).

    ``overrides``: dotted-key changes to the tiny sweep; ``rounds``: each round's searched
    parameters as ``run.json`` records them (default: one round, the sweep's); ``round_of``:
    each trial's round (default 0).
    """
    run_dir = root / "run"
    sweep = from_dict(tiny_sweep(**{"train.epochs": epochs, **(overrides or {})}), source="tiny.yaml").to_dict()
    (run_dir / "round-0").mkdir(parents=True)
    (run_dir / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    if rounds is None:
        meta_rounds = [{"index": 0, "dir": "round-0", "status": "done"}]
    else:
        meta_rounds = [
            {"index": i, "dir": f"round-{i}", "seed": i, "num_samples": 4, "parameters": p, "status": "done"}
            for i, p in enumerate(rounds)
        ]
    meta = {
        "name": "tiny",
        "status": "done",
        "created": "2026-01-01T00:00:00+00:00",
        "finished": "2026-01-01T00:01:00+00:00",
        "rounds": meta_rounds,
        "provenance": {
            "sweep_sha256": "ab" * 32,
            "git_commit": "0123abc",
            "versions": {"ray": "2.60.0"},
            "data": {"name": "synthetic", "sha256": "cd" * 32},
        },
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    for i, (params, history) in enumerate(trials):
        r = round_of[i] if round_of else 0
        d = run_dir / f"round-{r}" / f"run_trial_abcde_{i:05d}_{i}_x=1_2026-01-01_00-00-00"
        d.mkdir(parents=True)
        (d / "params.json").write_text(json.dumps(params))
        lines = [
            json.dumps(
                {
                    **h,
                    "trial_id": f"abcde_{i:05d}",
                    "node_ip": "10.0.0.1",
                    "hostname": "h",
                    "time_total_s": float(h["epoch"]),
                    "config": params,
                }
            )
            for h in history
        ]
        (d / "result.json").write_text("\n".join(lines) + ("\n" if lines else ""))
        if error_for and i in error_for:
            (d / "error.txt").write_text("Traceback...\nRuntimeError: boom\n")
    return run_dir


def write_export(run_dir: Path, retest: dict[str, Any] | None = None) -> Path:
    """The run's export ``best.yaml``, with a ``retest:`` section when given (written as given,
    not checked: a test may hand it a hostile section that tuner's own writer refuses)."""
    from tuner.files import strict, write_yaml

    export = export_mod.build(load_run(run_dir))
    if retest is None:
        return export_mod.write(export, run_dir / "best.yaml")
    data = strict(export.to_dict())  # what tuner's writer makes of the rest (a diverged trial's inf: null)
    data["retest"] = retest
    return write_yaml(run_dir / "best.yaml", data)


def retest_section(trials: list[str], params: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``retest:`` section in the format the retest command writes, one result per trial."""
    results = []
    for k, (trial, p) in enumerate(zip(trials, params)):
        scores = [0.8 - 0.05 * k + d for d in (-0.02, 0.0, 0.02)]
        stats = {
            "mean": sum(scores) / 3,
            "std": 0.02,
            "ci95": [min(scores) - 0.01, max(scores) + 0.01],
            "scores": scores,
        }
        results.append(
            {
                "trial": trial,
                "params": p,
                "search_score": 0.9 - 0.05 * k,
                "val": stats,
                "test": {"test_acc": {**stats, "mean": stats["mean"] - 0.01}},
                "diverged": 0,
                "seconds": 4.0,
            }
        )
    return {
        "metric": "val_acc",
        "mode": "max",
        "created": "2026-01-02T00:00:00+00:00",
        "seconds": 12.5,
        "seeds": [101, 102, 103],
        "top_k": len(results),
        "data": {"overrides": {}},
        "results": results,
        "ranking_changed": False,
        "drift": False,
        "messages": ["the best configuration held its rank"],
    }


def epochs(*accs: float, diverged_at: int | None = None) -> list[dict[str, Any]]:
    out = []
    for e, acc in enumerate(accs, start=1):
        out.append({"epoch": e, "val_acc": acc, "val_loss": 1 - acc, "train_loss": 1 - acc, "diverged": False})
    if diverged_at is not None:
        out.append(
            {
                "epoch": diverged_at,
                "val_acc": 0.0,
                "val_loss": float("inf"),
                "train_loss": float("inf"),
                "diverged": True,
            }
        )
    return out
