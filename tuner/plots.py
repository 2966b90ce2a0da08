"""The report's figures, drawn with matplotlib's Agg backend into PNG files.

Each function takes plain numbers (no run directory, no Ray) and writes one PNG
atomically. Parameters arrive on their latent scale (log10(lr), log10(1 - β), a
categorical's index; see :mod:`tuner.space`) with tick labels in the parameter's own
units. A diverged trial's metric is ±inf or the worst value: it is drawn at the worst edge
of the axis with its own marker, never dropped.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from tuner.files import write_bytes

DPI = 100
# How each status is drawn: marker, edge/line colour (None: the colour map), label.
STYLE = {
    "finished": ("o", None, "finished"),
    "stopped": ("v", None, "stopped early (ASHA)"),
    "diverged": ("x", "tab:red", "diverged"),
    "error": ("D", "black", "failed"),
    "running": ("s", "tab:gray", "running"),
}
CURVE_COLOUR = {
    "finished": "tab:blue",
    "stopped": "tab:gray",
    "diverged": "tab:red",
    "error": "black",
    "running": "tab:olive",
}


@dataclass
class Point:
    """One trial in a scatter: ``x`` in the parameter's own units, ``y`` the metric (may be
    ±inf), ``colour`` on the colour's latent scale (None: the single colour)."""

    x: float
    y: float
    colour: float | None
    status: str


@dataclass
class Colour:
    """What the colour of a scatter shows: its label and how a latent value reads."""

    label: str
    text: Callable[[float], str]


@dataclass
class Curve:
    """One trial's metric per epoch; a diverged trial's last point is its divergence."""

    epochs: list[int]
    values: list[float]
    status: str


@dataclass
class Axis:
    """One axis of the parallel coordinates: latent bounds and ticks (position, label)."""

    label: str
    low: float
    high: float
    ticks: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class RangePanel:
    """One numeric parameter across rounds: each round's (index, low, high) on the latent
    scale, the trials' (round, latent value), and how a latent value reads."""

    label: str
    rounds: list[tuple[int, float, float]]
    points: list[tuple[int, float]]
    ticks: list[tuple[float, str]]


@dataclass
class RetestBar:
    """One re-tested configuration: (mean, ci low, ci high) on validation and test, and the
    score it had in the search."""

    label: str
    val: tuple[float, float, float] | None
    test: tuple[float, float, float] | None
    search: float | None


def save(fig: Any, path: Path) -> Path:
    """Render ``fig`` to PNG and write it atomically; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")  # a bare Figure: no pyplot, no backend switch
    return write_bytes(path, buf.getvalue())


def _edges(values: Sequence[float], mode: str) -> tuple[float, float, float]:
    """Axis limits around the finite values, and where a non-finite (worst) value goes."""
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    worst = lo - pad if mode == "max" else hi + pad
    return lo - 2 * pad, hi + 2 * pad, worst


def _placed(v: float, worst: float) -> float:
    return v if math.isfinite(v) else worst


def scatter(
    path: Path,
    points: Sequence[Point],
    *,
    xlabel: str,
    metric: str,
    mode: str,
    colour: Colour | None,
    title: str,
    note: str = "",
) -> Path:
    """Metric against one parameter on a log x axis, a marker per status, coloured by
    another parameter (``colour``) or all one colour."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    lo, hi, worst = _edges([p.y for p in points], mode)
    cs = [p.colour for p in points if p.colour is not None and p.status != "diverged"]
    norm = Normalize(min(cs), max(cs) if max(cs) > min(cs) else min(cs) + 1) if colour and cs else None
    mappable = None
    for status, (marker, fixed, label) in STYLE.items():
        group = [p for p in points if p.status == status]
        if not group:
            continue
        xs = [p.x for p in group]
        ys = [_placed(p.y, worst) for p in group]
        label = f"{label} ({len(group)})"
        if fixed is not None or norm is None:
            ax.scatter(xs, ys, marker=marker, c=fixed or "tab:blue", label=label, alpha=0.85)
        else:
            mappable = ax.scatter(
                xs,
                ys,
                marker=marker,
                c=[p.colour for p in group],
                cmap="viridis",
                norm=norm,
                label=label,
                alpha=0.85,
                edgecolors="black",
                linewidths=0.3,
            )
    if any(not math.isfinite(p.y) for p in points):
        ax.axhline(worst, color="tab:red", lw=0.6, ls=":")
        ax.annotate(
            "non-finite (diverged)",
            (0.01, worst),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="tab:red",
            va="bottom",
        )
    _log_x(ax, [p.x for p in points])
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (last reported)")
    ax.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    if mappable is not None and colour is not None:
        bar = fig.colorbar(mappable, ax=ax)
        bar.set_label(colour.label)
        ticks = _linspace(norm.vmin, norm.vmax, 5)  # type: ignore[union-attr, arg-type]
        bar.set_ticks(ticks)
        bar.set_ticklabels([colour.text(t) for t in ticks])
    ax.legend(fontsize=8, loc="best")
    return save(fig, path)


def curves(
    path: Path, trials: Sequence[Curve], *, metric: str, mode: str, milestones: Sequence[int], max_t: int, title: str
) -> Path:
    """Each trial's metric per epoch, coloured by status, ASHA's rung milestones as dashed
    lines; a stopped trial ends in a bar, a diverged one in a red cross."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    lo, hi, worst = _edges([v for c in trials for v in c.values], mode)
    for c in trials:
        colour = CURVE_COLOUR.get(c.status, "tab:gray")
        keep = len(c.values) - 1 if c.status == "diverged" else len(c.values)
        ax.plot(c.epochs[:keep], c.values[:keep], color=colour, lw=1, alpha=0.6, marker=".", ms=3)
        if c.status == "diverged" and c.values:
            ax.plot(c.epochs[-1], _placed(c.values[-1], worst), marker="x", color=colour, ms=8, mew=2)
        elif c.status == "stopped" and c.values:  # hollow, so it shows on a rung's line
            ax.plot(c.epochs[-1], c.values[-1], marker="o", color=colour, mfc="white", ms=6, mew=1.5)
        elif c.status == "error" and c.values:
            ax.plot(c.epochs[-1], c.values[-1], marker="D", color=colour, ms=5)
    for k, m in enumerate(milestones):
        ax.axvline(m, color="tab:purple", ls="--", lw=1)
        ax.annotate(
            f"rung {k}",
            (m, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            color="tab:purple",
            ha="left",
            va="top",
            rotation=90,
        )
    counts = {s: sum(c.status == s for c in trials) for s in CURVE_COLOUR}
    marks = {"stopped": "o", "diverged": "x", "error": "D"}
    handles = [
        Line2D(
            [],
            [],
            color=CURVE_COLOUR[s],
            marker=marks.get(s, ""),
            mfc="white" if s == "stopped" else None,
            label=f"{STYLE[s][2]} ({n})",
        )
        for s, n in counts.items()
        if n
    ]
    if milestones:
        handles.append(Line2D([], [], color="tab:purple", ls="--", label="ASHA rung milestone"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.set_xlim(0.5, max_t + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(lo, hi)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    return save(fig, path)


def parallel(
    path: Path,
    axes: Sequence[Axis],
    rows: Sequence[Sequence[float]],
    scores: Sequence[float],
    *,
    metric: str,
    mode: str,
) -> Path:
    """Parallel coordinates: one vertical axis per searched parameter (on its latent
    scale) and a last one for the score; one line per trial, coloured by score, the best on
    top. A non-finite score is drawn red at the worst end."""
    finite = [s for s in scores if math.isfinite(s)]
    s_lo, s_hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if s_hi <= s_lo:
        s_lo, s_hi = s_lo - 0.5, s_hi + 0.5
    all_axes = list(axes) + [Axis(metric, s_lo, s_hi, [(v, f"{v:.3g}") for v in _linspace(s_lo, s_hi, 5)])]
    fig = Figure(figsize=(max(6.0, 1.8 * len(all_axes)), 4.8))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["viridis" if mode == "max" else "viridis_r"]
    norm = Normalize(s_lo, s_hi)
    sign = 1.0 if mode == "max" else -1.0
    order = sorted(range(len(rows)), key=lambda i: sign * scores[i] if math.isfinite(scores[i]) else -math.inf)
    for i in order:
        score = scores[i]
        ok = math.isfinite(score)
        worst_end = 0.0 if mode == "max" else 1.0
        ys = [_norm(v, a) for v, a in zip(rows[i], axes)] + [_norm(score, all_axes[-1]) if ok else worst_end]
        ax.plot(
            range(len(all_axes)),
            ys,
            color=cmap(norm(score)) if ok else "tab:red",
            lw=1.2,
            alpha=0.8 if ok else 0.5,
            ls="-" if ok else ":",
        )
    for j, a in enumerate(all_axes):
        ax.axvline(j, color="black", lw=0.8)
        for pos, text in a.ticks:
            y = _norm(pos, a)
            ax.plot([j - 0.03, j], [y, y], color="black", lw=0.8)
            ax.text(j - 0.05, y, text, fontsize=7, ha="right", va="center")
    ax.set_xticks(range(len(all_axes)))
    ax.set_xticklabels([a.label for a in all_axes], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.6, len(all_axes) - 0.7)
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(mappable, ax=ax).set_label(metric)
    ax.set_title(f"searched parameters on their own scales, coloured by {metric}", fontsize=10)
    return save(fig, path)


def ranges(path: Path, panels: Sequence[RangePanel]) -> Path:
    """One panel per numeric parameter: each round's range as a bar (latent scale) with
    that round's trials as dots, round 0 at the top."""
    fig = Figure(figsize=(7.5, 1.0 + 1.2 * len(panels)))
    axs = fig.subplots(len(panels), 1, squeeze=False)
    for ax, panel in zip(axs[:, 0], panels):
        for r, lo, hi in panel.rounds:
            ax.plot([lo, hi], [r, r], color="tab:blue", lw=6, alpha=0.35, solid_capstyle="butt")
        if panel.points:
            ax.scatter([z for _, z in panel.points], [r for r, _ in panel.points], s=10, color="black", zorder=3)
        n = max((r for r, _, _ in panel.rounds), default=0)
        ax.set_ylim(n + 0.6, -0.6)
        ax.set_yticks(range(n + 1))
        ax.set_yticklabels([f"round {r}" for r in range(n + 1)], fontsize=8)
        ax.set_xticks([p for p, _ in panel.ticks])
        ax.set_xticklabels([t for _, t in panel.ticks], fontsize=8)
        ax.set_title(panel.label, fontsize=9, loc="left")
        ax.grid(True, axis="x", alpha=0.25)
    fig.tight_layout()
    return save(fig, path)


def retest(path: Path, bars: Sequence[RetestBar], *, metric: str) -> Path:
    """Re-tested configurations: mean and 95% interval on validation and test seeds, and
    the single-seed score each had in the search."""
    fig = Figure(figsize=(max(6.0, 1.2 * len(bars) + 2), 4.2))
    ax = fig.subplots()
    for i, b in enumerate(bars):
        test_metric = metric.replace("val_", "test_", 1)
        for offset, stats, colour, name in (
            (-0.12, b.val, "tab:blue", f"validation ({metric})"),
            (0.12, b.test, "tab:orange", f"test ({test_metric})"),
        ):
            if stats is None:
                continue
            mean, lo, hi = stats
            ax.errorbar(
                i + offset,
                mean,
                yerr=[[mean - lo], [hi - mean]],
                fmt="o",
                color=colour,
                capsize=4,
                label=name if i == 0 else None,
            )
        if b.search is not None and math.isfinite(b.search):
            ax.plot(
                i,
                b.search,
                marker="*",
                color="black",
                ms=9,
                ls="",
                label=f"search ({metric}, one seed)" if i == 0 else None,
            )
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b.label for b in bars], fontsize=8, rotation=20, ha="right")
    ax.set_ylabel(metric)
    ax.set_title("retest: mean and 95% interval over fresh seeds", fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(fontsize=8)
    return save(fig, path)


def _log_x(ax: Any, xs: Sequence[float]) -> None:
    """A log x axis labelled in plain numbers: 1-2-5 steps over a few decades, decades beyond."""
    ax.set_xscale("log")
    pos = [x for x in xs if x > 0 and math.isfinite(x)]
    decades = math.log10(max(pos) / min(pos)) if pos else 0.0
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _norm(v: float, a: Axis) -> float:
    return (v - a.low) / (a.high - a.low) if a.high > a.low else 0.5


def _linspace(lo: float, hi: float, n: int) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]
