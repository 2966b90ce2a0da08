"""What a retest concludes: each configuration's mean, spread and 95% interval over its fresh
seeds, the ranking they give, and whether it changed beyond noise or drifted since the last
retest (:func:`summarize`); the export re-ranked by it (:func:`updated_export`) and the lines
``tuner retest`` prints (:func:`describe`). The running is :mod:`tuner.retesting`'s.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tuner import export_file as export_mod
from tuner.records import Export, RetestEntry, RetestResult, Stats, TopEntry, sign, test_metric

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def stats(scores: Sequence[float]) -> Stats:
    """Mean, sample standard deviation and 95% confidence interval of the mean (None below
    two scores). Non-finite scores (a diverged seed's worst value) make the mean non-finite."""
    n = len(scores)
    if n == 0:
        return Stats(math.nan, math.nan, None, [])
    mean = sum(scores) / n
    if n < 2 or not math.isfinite(mean):
        return Stats(mean, 0.0 if n < 2 else math.nan, None, list(scores))
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * std / math.sqrt(n)
    return Stats(mean, std, [mean - half, mean + half], list(scores))


def _key(trial: str | None, params: Mapping[str, Any]) -> str:
    """Identifies a configuration across retests: its trial id, else its params."""
    return str(trial or json.dumps(dict(params), sort_keys=True, default=str))


def summarize(
    candidates: Sequence[TopEntry],
    seed_list: Sequence[int],
    results: Sequence[dict[str, Any]],
    metric: str,
    mode: str,
    history: Sequence[RetestEntry],
    export: Export,
    tolerance: float,
) -> RetestEntry:
    """Rank the configurations by their mean metric and compare with the previous best."""
    n = len(seed_list)
    rows = []
    for i, c in enumerate(candidates):
        runs = results[i * n : (i + 1) * n]
        tests = sorted({k for r in runs for k in r["metrics"] if k.startswith("test_")})
        rows.append(
            RetestResult(
                trial=c.trial,
                params=dict(c.params),
                search_score=c.score,
                val=stats([float(r["metrics"].get(metric, math.nan)) for r in runs]),
                test={k: stats([float(r["metrics"][k]) for r in runs if k in r["metrics"]]) for k in tests},
                diverged=sum(bool(r["diverged"]) for r in runs),
                seconds=sum(float(r["seconds"]) for r in runs),
            )
        )
    s = sign(mode)
    rows.sort(key=lambda r: -s * r.val.mean if math.isfinite(r.val.mean) else math.inf)
    best = rows[0]
    messages: list[str] = []
    previous = history[-1] if history else None
    if previous:
        prev_key = _key(previous.results[0].trial, previous.results[0].params)
    else:
        first = export.top[0] if export.top else TopEntry(params=export.params, score=export.score)
        prev_key = _key(first.trial, first.params)
    ranking_changed = False
    if _key(best.trial, best.params) != prev_key:
        prev_row = next((r for r in rows if _key(r.trial, r.params) == prev_key), None)
        if prev_row is None:
            messages.append(f"the previous best ({prev_key}) was not re-tested")
        else:
            lo, hi = best.val.ci95 or [best.val.mean, best.val.mean]
            plo, phi = prev_row.val.ci95 or [prev_row.val.mean, prev_row.val.mean]
            if lo > phi if mode == "max" else hi < plo:
                ranking_changed = True
                messages.append(
                    f"ranking changed: {_name(best)} is now best ({_pm(best.val)}), beyond noise "
                    f"of the previous best {_name(prev_row)} ({_pm(prev_row.val)})"
                )
            else:
                messages.append(
                    f"{_name(best)} ranks first now ({_pm(best.val)}), but within noise of the "
                    f"previous best {_name(prev_row)} ({_pm(prev_row.val)}): ranking unchanged"
                )
    else:
        messages.append(f"the best is unchanged: {_name(best)} ({_pm(best.val)})")
    drift = False
    if previous:
        before, after = previous.results[0].val.mean, best.val.mean
        drop = s * (before - after)  # how much worse, in the metric's own direction
        if drop > tolerance or (math.isfinite(before) and not math.isfinite(after)):
            drift = True
            messages.append(
                f"drift: the best {metric} went from {before:.4f} to {after:.4f} since the last retest "
                f"({previous.created or '?'}), worse by more than the tolerance {tolerance:g}"
            )
    else:
        messages.append("first retest: recorded as the baseline for drift checks")
    if all(r.diverged == n for r in rows):
        messages.append("every seed of every configuration diverged")
    return RetestEntry(
        metric=metric,
        mode=mode,
        seeds=list(seed_list),
        results=rows,
        ranking_changed=ranking_changed,
        drift=drift,
        tolerance=tolerance,
        messages=messages,
    )


def updated_export(export: Export, entry: RetestEntry) -> Export:
    """The export re-ranked by the retest: ``top`` in retest order with its statistics,
    ``params``/``config``/``score`` of the new best, and the ``retest`` section."""
    out = copy.deepcopy(export)
    old_top = {_key(t.trial, t.params): t for t in export.top}
    top = []
    for row in entry.results:
        t = copy.deepcopy(
            old_top.get(_key(row.trial, row.params), TopEntry(params=row.params, score=None, trial=row.trial))
        )
        t.retest = {"val": _brief(row.val), "test": {k: _brief(v) for k, v in row.test.items()}}
        top.append(t)
    tested = {_key(r.trial, r.params) for r in entry.results}
    top += [copy.deepcopy(t) for t in export.top if _key(t.trial, t.params) not in tested]
    best = entry.results[0]
    out.top = top
    out.params = dict(best.params)
    out.config = export_mod.best_config(export.config, best.params)
    out.score = best.val.mean
    out.retest = entry.to_dict()
    return out


def _brief(s: Stats) -> dict[str, Any]:
    return {"mean": s.mean, "std": s.std, "ci95": s.ci95}


def describe(entry: RetestEntry) -> list[str]:
    """The lines a retest prints: the ranking with intervals, then the verdicts."""
    counterpart = test_metric(entry.metric)
    lines = [
        f"ranking by mean {entry.metric} over {len(entry.seeds)} seeds (95% CI)"
        + ("; test metrics on the held-out split:" if any(r.test for r in entry.results) else ":")
    ]
    for i, r in enumerate(entry.results, start=1):
        div = f", {r.diverged} diverged" if r.diverged else ""
        shown = {k: v for k, v in r.test.items() if counterpart is None or k == counterpart} or r.test
        tests = "  ".join(f"{k} {_pm(v)}" for k, v in shown.items())
        lines.append(f"  {i}. {_name(r)}: {entry.metric} {_pm(r.val)}  {tests}{div}".rstrip())
    lines += [f"  {m}" for m in entry.messages]
    if entry.drift:
        lines.append("DRIFT: the best configuration's score got worse since the last retest")
    return lines


def _name(row: RetestResult) -> str:
    return str(row.trial or json.dumps(row.params, sort_keys=True, default=str))


def _pm(s: Stats) -> str:
    ci = f" [{s.ci95[0]:.4f}, {s.ci95[1]:.4f}]" if s.ci95 else ""
    return f"{s.mean:.4f} ± {s.std:.4f}{ci}"
