"""Does the best hold up on fresh seeds? The export's latest retest: each re-tested
configuration's mean and 95% interval on validation and test, beside its one-seed search score."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from tuner.errors import InputError
from tuner.files import json_lines
from tuner.records import EXPORT_FILE, Export, RetestEntry, history_path, test_metric
from tuner.records import Stats as RecordStats
from tuner.report import figure
from tuner.report.context import Context
from tuner.report.figure import Drawn
from tuner.report.page import p, table
from tuner.space import short

# A retest's statistics on one split: (mean, 95% interval low, high, std).
Stats = tuple[float, float, float, float]


@dataclass
class Bar:
    """One re-tested configuration on the figure."""

    label: str
    val: Stats | None
    test: Stats | None
    search: float | None


def latest(export: Export | None, source: Path) -> RetestEntry | None:
    """The export's latest retest (None when there is none).

    Raises:
        InputError: a malformed ``retest:`` section (checked before anything is written).
    """
    if export is None or export.retest is None:
        return None
    return RetestEntry.from_dict(export.retest, str(source), "retest")


def stats(s: RecordStats | None) -> Stats | None:
    """(mean, ci low, ci high, std); without an interval it is mean ± std."""
    if s is None:
        return None
    lo, hi = s.ci95 if s.ci95 else (s.mean - s.std, s.mean + s.std)
    return s.mean, lo, hi, s.std


def bars(ctx: Context, entry: RetestEntry) -> tuple[list[Bar], str | None]:
    """The figure's bars and the test metric they show (None: the retest has no test scores)."""
    search = {str(t.trial): t.score for t in ctx.export.top} if ctx.export else {}
    counterpart = test_metric(entry.metric or ctx.metric)
    shown: str | None = None
    out = []
    for i, r in enumerate(entry.results):
        test = None
        if counterpart and counterpart in r.test:
            test, shown = stats(r.test[counterpart]), counterpart
        elif r.test:
            name, first = next(iter(r.test.items()))
            test, shown = stats(first), name
        score = r.search_score if r.search_score is not None else search.get(str(r.trial))
        out.append(Bar(f"#{i + 1} {r.trial or ''}", stats(r.val), test, None if score is None else _num(score)))
    return out, shown


def draw(metric: str, test_name: str | None, bs: Sequence[Bar]) -> Figure:
    """Means with 95% intervals on validation and test seeds; the search's one-seed score as a star."""
    fig = figure.new(max(6.0, 1.3 * len(bs) + 2), 4.4)
    ax = fig.subplots()
    for i, b in enumerate(bs):
        for offset, st, colour, name in (
            (-0.12, b.val, "tab:blue", f"validation: {metric}, fresh seeds"),
            (0.12, b.test, "tab:orange", f"test: {test_name}, fresh seeds"),
        ):
            if st is not None:
                mean, lo, hi = (figure.clip(v) for v in st[:3])  # autoscaled: the span must stay finite
                ax.errorbar(
                    i + offset, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color=colour, capsize=4, label=name
                )
        if b.search is not None and math.isfinite(b.search):
            ax.plot(
                i, figure.clip(b.search), marker="*", color="black", ms=10, ls="", label=f"search: {metric}, one seed"
            )
    ax.set_xticks(range(len(bs)), [b.label for b in bs], fontsize=8, rotation=15, ha="right")
    ax.set_ylabel(f"{metric} (validation)" + (f" and {test_name} (test)" if test_name else ""))
    ax.set_title("Does the best hold up on fresh seeds? Mean and 95% interval", fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    figure.legend_outside(fig, ax)
    return fig


def section(ctx: Context, entry: RetestEntry | None) -> list[str | Drawn]:
    """The retest's facts, figure and table; one line when there is none."""
    source = ctx.run.path / EXPORT_FILE
    if ctx.export is None:
        return [p(f"No retest yet: there is no export ({EXPORT_FILE}) in the run directory.")]
    if entry is None:
        return [p(f"No retest yet (tuner retest {source} re-trains the best configurations on fresh seeds).")]
    bs, test_name = bars(ctx, entry)
    facts = [
        f"{len(entry.seeds)} seeds",
        f"top {entry.top_k or len(bs)}",
        f"created {entry.created or '?'}",
        f"{entry.seconds:.0f} s",
        "ranking changed" if entry.ranking_changed else "ranking unchanged",
        "drift detected" if entry.drift else "no drift",
    ]
    try:  # beside the file a link names: where tuner retest keeps it
        history = history_path(Path(source).resolve())
    except (OSError, RuntimeError):
        history = history_path(source)
    if history.is_file():
        with contextlib.suppress(InputError, OSError):  # too large: the count is left out, not the page
            n = sum(1 for _ in json_lines(history, errors="replace"))
            facts.append(f"{n} retest(s) in {history.name}")
    parts: list[str | Drawn] = [p("Latest retest: " + ", ".join(facts) + ".")]
    parts += [p(str(m)) for m in entry.messages]
    parts.append(Drawn("retest.png", draw(entry.metric or ctx.metric, test_name, bs), "retest means and intervals"))
    rows = [
        [
            str(i + 1),
            str(r.trial or ""),
            params_text(r.params),
            _text(b.val),
            _text(b.test),
            "–" if b.search is None else f"{b.search:.4g}",
        ]
        for i, (r, b) in enumerate(zip(entry.results, bs))
    ]
    head = ["#", "trial", "params", "validation mean ± std [95% CI]", "test mean ± std [95% CI]", "search score"]
    parts.append(table(head, rows))
    return parts


def _text(s: Stats | None) -> str:
    return "–" if s is None else f"{s[0]:.4g} ± {s[3]:.2g} [{s[1]:.4g}, {s[2]:.4g}]"


def params_text(params: Any) -> str:
    """Searched values as one line: ``train.lr=0.03, model.hidden=[16]``."""
    if not isinstance(params, dict):
        return short(params)
    return ", ".join(f"{k}={short(v)}" for k, v in params.items())


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
