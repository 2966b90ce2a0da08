"""The export file: the best configuration of a run, as a file that trains the final model.

Contract (DESIGN.md)::

    metric: val_acc
    mode: max
    score: 0.713                     # the best trial's last reported metric
    params: {train.lr: 0.031, ...}   # its searched values
    config: {...}                    # the whole resolved sweep with params applied, no search left
    top: [{params, score, trial, round, epochs, status}, ...]   # the best k, best first
    provenance: {sweep_sha256, run_dir, created, versions, ...}

``config`` is itself a valid sweep: ``tuner run`` of it re-creates the best trial, and
``tuner train`` reads it. YAML and JSON exports hold the same content.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from tuner.errors import InputError
from tuner.files import write_json, write_yaml
from tuner.results import Run, load_run
from tuner.space import apply_params

FORMATS = ("yaml", "json")
DEFAULT_TOP_K = 5


def best_config(sweep: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The resolved sweep with ``params`` applied and nothing left to search."""
    config = copy.deepcopy(sweep)
    config.update(apply_params({k: config[k] for k in ("data", "model", "train")}, params))
    search = config.get("search", {})
    config["search"] = {"method": "random", "num_samples": 1, "seed": int(search.get("seed", 0)),
                        "max_concurrent": int(search.get("max_concurrent", 0)), "parameters": {}}
    return config


def ordered(params: dict[str, Any], sweep: dict[str, Any]) -> dict[str, Any]:
    """``params`` in the order the sweep file lists its parameters."""
    order = list(sweep.get("search", {}).get("parameters", {}))
    return dict(sorted(params.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def build(run: Run, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """The export of ``run`` as a mapping (see the module docstring).

    Raises:
        InputError: no trial of the run reported a score yet.
    """
    ranked = run.ranked()
    if not ranked:
        raise InputError(f"{run.path}: no trial has reported {run.metric} yet; nothing to export")
    best = ranked[0]
    prov = dict(run.meta.get("provenance", {}))
    prov.update({"run_dir": str(run.path.resolve()), "created": _now(), "run_created": run.meta.get("created"),
                 "run_finished": run.meta.get("finished"), "run_status": run.meta.get("status", "unknown")})
    return {
        "metric": run.metric,
        "mode": run.mode,
        "score": best.score(run.metric),
        "params": ordered(best.params, run.sweep),
        "config": best_config(run.sweep, best.params),
        "top": [{"params": ordered(t.params, run.sweep), "score": t.score(run.metric), "trial": t.trial_id, "round": t.round,
                 "epochs": t.epochs, "status": t.status} for t in ranked[:top_k]],
        "provenance": prov,
    }


def write(export: dict[str, Any], path: str | Path, fmt: str | None = None) -> Path:
    """Write an export atomically; ``fmt`` defaults to the file's suffix (``.json`` or YAML)."""
    fmt = fmt or ("json" if str(path).endswith(".json") else "yaml")
    if fmt not in FORMATS:
        raise InputError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return write_json(path, export) if fmt == "json" else write_yaml(path, export)


def export_run(run_dir: str | Path, output: str | Path | None = None, top_k: int = DEFAULT_TOP_K,
               fmt: str | None = None) -> Path:
    """Export a run directory's best configuration; returns the file written
    (default ``RUN_DIR/best.yaml``, or ``best.json`` with ``fmt="json"``)."""
    if top_k < 1:
        raise InputError(f"--top-k: {top_k} must be >= 1")
    run = load_run(run_dir)
    if output is None:
        output = Path(run_dir) / ("best.json" if fmt == "json" else "best.yaml")
    return write(build(run, top_k), output, fmt)


def load(path: str | Path) -> dict[str, Any]:
    """Read an export file (YAML or JSON) and check its required keys.

    Raises:
        InputError: missing, unreadable or not an export.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise InputError(f"{path}: not valid {'JSON' if p.suffix == '.json' else 'YAML'} ({e})".replace("\n", " "))
    if not isinstance(data, dict):
        raise InputError(f"{path}: not an export file (the top level must be a mapping)")
    missing = [k for k in ("metric", "mode", "score", "params", "config") if k not in data]
    if missing:
        raise InputError(f"{path}: not an export file (missing {', '.join(missing)})")
    if not isinstance(data["config"], dict) or not isinstance(data["params"], dict):
        raise InputError(f"{path}: config and params must be mappings")
    return data


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
