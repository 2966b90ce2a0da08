"""Re-testing an export's best configurations with fresh seeds, now and then.

A single lucky seed misleads, and data, code and hardware drift. ``tuner retest EXPORT``
re-trains each of the export's top-k configurations at its full budget with N fresh seeds,
all in parallel on the Ray cluster, and scores every seed on the validation split and on the
held-out test split. Configurations are ranked by their mean validation score; each gets a
standard deviation and a 95% confidence interval (Student's t).

It then says plainly:

- **ranking changed**: the previous best (the last retest's, or the search's for a first
  retest) is no longer best beyond noise -- the new best's interval lies wholly above it
  (below, for a loss);
- **drift**: the best's mean score got worse than at the last retest by more than
  ``tolerance`` (metric units): the data, the code or the environment moved.

Each retest appends one JSON line to ``<export>.retest.jsonl`` beside the export and
rewrites the export atomically: its ``top`` re-ordered by the retest, ``params``/``config``/
``score`` following the new best, and a ``retest:`` section holding this retest.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import random
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from models.data import DataError, Dataset
from models.data import load as load_data
from models.train import Trainer
import tuner.export_file as export_mod
from tuner.errors import InputError
from tuner.files import append_line, read_json_lines
from tuner.spec import Sweep, from_dict

DEFAULT_SEEDS = 3
DEFAULT_TOLERANCE = 0.02
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def stats(scores: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95% confidence interval of the mean."""
    n = len(scores)
    mean = sum(scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1)) if n > 1 else 0.0
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * std / math.sqrt(n) if n > 1 else math.inf
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "scores": list(scores)}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h`` or ``1d``.

    Raises:
        InputError: not of that form, or zero.
    """
    m = _DURATION.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"--every: {text!r} must be a positive duration like 30s, 15m, 12h or 1d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_overrides(pairs: Sequence[str], flag: str = "--data") -> dict[str, Any]:
    """``["seed=7", "path=x.npz"]`` -> ``{"seed": 7, "path": "x.npz"}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag}: {pair!r} must be KEY=VALUE (e.g. {flag} seed=7)")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def sweep_with_data(config: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None) -> Sweep:
    """An export's ``config`` as a validated sweep, with ``data`` overrides applied
    (problems name the overridden key as ``data.KEY``)."""
    raw = copy.deepcopy(dict(config))
    if overrides:
        data = dict(raw.get("data", {}))
        if "name" in overrides and overrides["name"] != data.get("name"):  # another source: drop the old options
            data = {k: v for k, v in data.items() if k in ("val_fraction", "split_seed")}
        data.update(overrides)
        raw["data"] = data
    return from_dict(raw, source=source)


def load_sweep_data(sweep: Sweep) -> Dataset:
    """The sweep's data with its test split; a data problem is bad input."""
    try:
        return load_data(sweep.data)
    except DataError as e:
        raise InputError(f"{sweep.source}: data: {e}") from None


def test_metric(metric: str) -> str:
    """The test-split counterpart of a metric (``val_acc`` -> ``test_acc``)."""
    return "test_acc" if metric == "val_acc" else "test_loss"


def score_config(cfg: Mapping[str, Any], data: Dataset, seed: int, device: Any = None) -> dict[str, Any]:
    """Train one configuration for its full budget with ``seed``; score val and test.

    Runs inside a Ray task (see :func:`tuner.backend.run_tasks`). A diverged run scores the
    worst value of every metric.
    """
    start = time.perf_counter()
    trainer = Trainer(cfg["model"], {**cfg["train"], "seed": int(seed)}, data, device=device)
    m = None
    for _ in range(int(cfg["train"]["epochs"])):
        m = trainer.step()
        if m.diverged:
            return {"seed": seed, "diverged": True, "val_acc": 0.0, "val_loss": math.inf, "train_loss": math.inf,
                    "test_acc": 0.0, "test_loss": math.inf, "seconds": time.perf_counter() - start}
    assert m is not None and data.x_test is not None and data.y_test is not None
    test_loss, test_acc = trainer.evaluate(data.x_test, data.y_test)
    return {"seed": seed, "diverged": False, "val_acc": m.val_acc, "val_loss": m.val_loss,
            "train_loss": m.train_loss, "test_acc": test_acc, "test_loss": test_loss,
            "seconds": time.perf_counter() - start}


def history_path(export_path: str | Path) -> Path:
    """``best.yaml`` -> ``best.retest.jsonl`` beside it."""
    p = Path(export_path)
    return p.with_name(p.stem + ".retest.jsonl")


def read_history(export_path: str | Path) -> list[dict[str, Any]]:
    """Every earlier retest of this export, oldest first."""
    path = history_path(export_path)
    if not path.exists():
        return []
    return read_json_lines(path)


def _key(entry: Mapping[str, Any]) -> str:
    """Identifies a configuration across retests: its trial id, else its params."""
    return str(entry.get("trial") or json.dumps(entry.get("params", {}), sort_keys=True))


def fresh_seeds(n: int, avoid: set[int]) -> list[int]:
    """``n`` random seeds never used before by the search or an earlier retest."""
    rng = random.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < n:
        s = rng.randrange(1, 2**31 - 1)
        if s not in avoid and s not in seeds:
            seeds.append(s)
    return seeds


def retest(export_path: str | Path, seeds: int = DEFAULT_SEEDS, top_k: int | None = None,
           data: Mapping[str, Any] | None = None, address: str | None = None,
           tolerance: float = DEFAULT_TOLERANCE, write: Callable[[str], None] = print) -> dict[str, Any]:
    """Re-test an export's top-k configurations with ``seeds`` fresh seeds each.

    Args:
        export_path: the export file (YAML or JSON); rewritten atomically with the result.
        seeds: fresh seeds per configuration (>= 1; >= 2 for a confidence interval).
        top_k: how many of the export's ``top`` to re-test (default: all of them).
        data: overrides of the ``data`` section, e.g. ``{"seed": 7}`` or
            ``{"name": "npz", "path": "new.npz"}``: re-test on a new data snapshot.
        address: the Ray cluster to run on (None: a local instance).
        tolerance: a drop of the best's mean score beyond this (metric units) since the last
            retest is flagged as drift.

    Returns:
        The retest entry (also appended to the history and stored in the export).

    Raises:
        InputError: a bad export file, argument or data override (nothing run or written).
    """
    from tuner import backend

    export = export_mod.load(export_path)
    if seeds < 1:
        raise InputError(f"--seeds: {seeds} must be >= 1")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k: {top_k} must be >= 1")
    if tolerance < 0:
        raise InputError(f"--tolerance: {tolerance} must be >= 0")
    try:
        sweep = sweep_with_data(export["config"], str(export_path), data)
    except InputError as e:
        raise InputError([line.replace(": data.", ": --data ", 1) if data else line for line in e.problems]) from None
    dataset = load_sweep_data(sweep)
    metric, mode = str(export["metric"]), str(export["mode"])
    candidates = list(export.get("top") or [{"params": export["params"], "score": export["score"], "trial": None}])
    candidates = candidates[:top_k] if top_k else candidates
    history = read_history(export_path)
    used = {int(sweep.train.get("seed", 0))} | {int(s) for h in history for s in h.get("seeds", [])}
    seed_list = fresh_seeds(seeds, used)
    base = sweep.base_config()
    from tuner.space import apply_params

    calls = [{"cfg": apply_params(base, c["params"]), "seed": s} for c in candidates for s in seed_list]
    resources = backend.connect(address)
    write(f"retest {export_path}: {len(candidates)} configurations x {seeds} fresh seeds "
          f"({len(calls)} trainings of {sweep.train['epochs']} epochs) on {resources.get('CPU', 0):g} CPUs / "
          f"{resources.get('GPU', 0):g} GPUs")
    started = time.monotonic()
    done = [0]

    def progress(index: int, result: dict[str, Any]) -> None:
        done[0] += 1
        write(f"[{time.monotonic() - started:5.0f}s] {done[0]}/{len(calls)} done")

    results = backend.run_tasks(score_config, calls, shared={"data": dataset}, cpu=sweep.resources.cpu,
                                gpu=sweep.resources.gpu, on_result=progress)
    entry = summarize(candidates, seed_list, results, metric, mode, history, export, tolerance)
    entry.update(created=_now(), seconds=time.monotonic() - started, top_k=len(candidates),
                 data={"overrides": dict(data or {}), "fingerprint": dataset.fingerprint()})
    if history and history[-1].get("data", {}).get("fingerprint", {}).get("sha256") not in (
            None, dataset.fingerprint()["sha256"]):
        entry["messages"].append("the data differs from the last retest's (fingerprint changed)")
    append_line(history_path(export_path), entry)
    export_mod.write(updated_export(export, entry, metric), export_path)
    for line in describe(entry, metric):
        write(line)
    return entry


def summarize(candidates: Sequence[Mapping[str, Any]], seed_list: Sequence[int], results: Sequence[dict[str, Any]],
              metric: str, mode: str, history: Sequence[Mapping[str, Any]], export: Mapping[str, Any],
              tolerance: float) -> dict[str, Any]:
    """Rank the configurations by mean val score and compare with the previous best."""
    n = len(seed_list)
    tmetric = test_metric(metric)
    rows = []
    for i, c in enumerate(candidates):
        runs = results[i * n:(i + 1) * n]
        rows.append({"trial": c.get("trial"), "params": dict(c["params"]), "search_score": c.get("score"),
                     "val": stats([float(r[metric]) for r in runs]), "test": stats([float(r[tmetric]) for r in runs]),
                     "diverged": sum(bool(r["diverged"]) for r in runs),
                     "seconds": sum(float(r["seconds"]) for r in runs)})
    sign = 1.0 if mode == "max" else -1.0
    rows.sort(key=lambda r: -sign * r["val"]["mean"] if math.isfinite(r["val"]["mean"]) else math.inf)
    best = rows[0]
    messages: list[str] = []
    previous = history[-1] if history else None
    prev_best_key = _key(previous["results"][0]) if previous else _key((export.get("top") or [{}])[0])
    ranking_changed = False
    if _key(best) != prev_best_key:
        prev_row = next((r for r in rows if _key(r) == prev_best_key), None)
        if prev_row is None:
            messages.append(f"the previous best ({prev_best_key}) was not re-tested")
        else:
            lo, hi = best["val"]["ci95"]
            plo, phi = prev_row["val"]["ci95"]
            beyond = lo > phi if mode == "max" else hi < plo
            if beyond:
                ranking_changed = True
                messages.append(f"ranking changed: {_name(best)} is now best ({_pm(best['val'])}), beyond noise "
                                f"of the previous best {_name(prev_row)} ({_pm(prev_row['val'])})")
            else:
                messages.append(f"{_name(best)} ranks first now ({_pm(best['val'])}), but within noise of the "
                                f"previous best {_name(prev_row)} ({_pm(prev_row['val'])}): ranking unchanged")
    else:
        messages.append(f"the best is unchanged: {_name(best)} ({_pm(best['val'])})")
    drift = False
    if previous:
        before = float(previous["results"][0]["val"]["mean"])
        now = float(best["val"]["mean"])
        drop = (before - now) if mode == "max" else (now - before)
        if drop > tolerance:
            drift = True
            messages.append(f"drift: the best {metric} fell from {before:.4f} to {now:.4f} since the last retest "
                            f"({previous.get('created', '?')}), more than the tolerance {tolerance:g}")
    else:
        messages.append("first retest: recorded as the baseline for drift checks")
    if all(r["diverged"] == n for r in rows):
        messages.append("every seed of every configuration diverged")
    return {"seeds": list(seed_list), "results": rows, "ranking_changed": ranking_changed, "drift": drift,
            "messages": messages}


def updated_export(export: Mapping[str, Any], entry: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """The export re-ranked by the retest: ``top`` in retest order with its statistics,
    ``params``/``config``/``score`` of the new best, and the ``retest`` section."""
    out = copy.deepcopy(dict(export))
    old_top = {_key(t): t for t in export.get("top") or []}
    top = []
    for row in entry["results"]:
        t = dict(old_top.get(_key(row), {"params": row["params"], "trial": row["trial"]}))
        t["retest"] = {"val": {k: row["val"][k] for k in ("mean", "std", "ci95")},
                       "test": {k: row["test"][k] for k in ("mean", "std", "ci95")}}
        top.append(t)
    tested = {_key(r) for r in entry["results"]}
    top += [t for t in export.get("top") or [] if _key(t) not in tested]
    best = entry["results"][0]
    out["top"] = top
    out["params"] = dict(best["params"])
    out["config"] = export_mod.best_config({k: v for k, v in export["config"].items()}, best["params"])
    out["score"] = best["val"]["mean"]
    out["retest"] = dict(entry)
    return out


def describe(entry: Mapping[str, Any], metric: str) -> list[str]:
    """The lines a retest prints: the ranking with intervals, then the verdicts."""
    tmetric = test_metric(metric)
    lines = [f"ranking by mean {metric} over {len(entry['seeds'])} seeds (95% CI); {tmetric} on the held-out split:"]
    for i, r in enumerate(entry["results"], start=1):
        div = f", {r['diverged']} diverged" if r["diverged"] else ""
        lines.append(f"  {i}. {_name(r)}: {metric} {_pm(r['val'])}  {tmetric} {_pm(r['test'])}{div}")
    lines += [f"  {m}" for m in entry["messages"]]
    if entry["drift"]:
        lines.append("DRIFT: the best configuration's score dropped since the last retest")
    return lines


def _name(row: Mapping[str, Any]) -> str:
    return str(row.get("trial") or json.dumps(row["params"], sort_keys=True))


def _pm(s: Mapping[str, Any]) -> str:
    lo, hi = s["ci95"]
    ci = f" [{lo:.4f}, {hi:.4f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{s['mean']:.4f} ± {s['std']:.4f}{ci}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
