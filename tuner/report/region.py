"""Where is the good region? The score against each searched parameter at a common budget,
and the learning rate × (1 − β) map.

Each row of the grid holds the trials' scores at one budget (each ASHA rung's epoch, then the
full budget), so a trial stopped early is compared with the others at the epoch where ASHA
judged it, never its last score with a 20-epoch one. Each parameter is on its own scale
(:mod:`tuner.report.axes`); a list of values (a batch size, a width) is a column of points per
value with its median. The run's best trial is ringed in red.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from tuner.records import TrialStatus
from tuner.report import figure
from tuner.report.axes import Axis, axis
from tuner.report.context import Context
from tuner.report.figure import BEST, STYLES, Drawn, best_label

MAX_ROWS = 4  # budgets in the grid: the first and the last three when there are more


@dataclass(frozen=True)
class Point:
    """One trial on one panel: ``x`` on the parameter's axis, ``y`` its score there (±inf:
    diverged, drawn at the worst edge)."""

    trial: str
    x: float
    y: float
    status: TrialStatus
    diverged: bool
    best: bool


def points(ctx: Context, ax: Axis, epoch: int | None, other: Axis | None = None) -> list[Point]:
    """The trials' points for the parameter of ``ax`` at ``epoch`` (None: the last report);
    with ``other`` the y is that parameter's position instead of the score (the map)."""
    best = ctx.best.trial_id if ctx.best else None
    out = []
    for s in ctx.scores_at(epoch):
        t = s.trial
        path = ax.parameter.path
        x = ax.position(t.params[path]) if path in t.params else None
        if x is None:
            continue  # not searched in this trial, or outside the first round's values
        y = s.value
        if other is not None:
            oy = other.position(t.params.get(other.parameter.path))
            if oy is None:
                continue
            y = oy
        out.append(Point(t.trial_id, x + ax.jitter(t.trial_id), y, t.status, s.diverged, t.trial_id == best))
    return out


def grid_budgets(ctx: Context) -> list[int | None]:
    """The budgets the grid shows: each one some trial reached (each ASHA rung, then the full
    budget), at most :data:`MAX_ROWS` of them: the first, the one the best trial ended at
    and the last ones (None: the last report, for a function that states no budget)."""
    if not ctx.budgets:
        return [None]
    shown = [b for b in ctx.budgets if ctx.scores_at(b)]
    if len(shown) <= MAX_ROWS:
        return list(shown)
    ended = [b for b in shown if ctx.best is not None and b <= ctx.best.epochs]
    keep = {shown[0], *ended[-1:]}
    for b in reversed(shown):
        if len(keep) >= MAX_ROWS:
            break
        keep.add(b)
    return sorted(keep)


def draw_grid(ctx: Context, axes: Sequence[Axis], budgets: Sequence[int | None]) -> Figure:
    """The grid: a row per budget, a column per parameter."""
    width = max(4.0, 3.2 * len(axes))
    fig = figure.new(width, 1.2 + 2.6 * len(budgets))
    grid = fig.subplots(len(budgets), len(axes), squeeze=False, sharey="row")
    for r, epoch in enumerate(budgets):
        scores = [s.value for s in ctx.scores_at(epoch)]
        lo, hi, bad = figure.edges(scores, ctx.mode)
        for c, a in enumerate(axes):
            ax = grid[r, c]
            pts = points(ctx, a, epoch)
            _scatter(ax, pts, bad)
            if a.parameter.categorical:
                _medians(ax, a, pts)
            a.apply(ax)
            if r < len(budgets) - 1:
                ax.set_xlabel("")
            ax.set_ylim(lo, hi)
            if figure.clipped(p.y for p in pts):
                figure.note(ax, figure.CLIPPED)
            ax.grid(True, alpha=0.25)
            if c == 0:
                ax.set_ylabel(ctx.budget_text(epoch).replace(" at ", "\nat "))
            if not pts:
                figure.note(ax, "no trial reached this budget")
    fig.suptitle(
        figure.wrapped(
            f"Where is the good region? {ctx.metric} against each parameter at a common budget "
            f"({'each ASHA rung' if len(ctx.budgets) > 1 else 'the full budget' if ctx.budgets else 'the last report'})"
            + ("; best trial ringed" if ctx.best is not None else "; no best: no finite score"),
            width,
        ),
        fontsize=10,
    )
    figure.legend_outside(fig, *grid.flat)
    return fig


def _scatter(ax: Any, pts: Sequence[Point], bad: float) -> None:
    for status, style in STYLES.items():
        group = [p for p in pts if p.status is status]
        if group:
            ax.scatter(
                [p.x for p in group],
                [figure.placed(p.y, bad) for p in group],
                marker=style.marker,
                c=style.colour,
                s=22,
                alpha=0.75,
                label=style.label,
            )
    best = [p for p in pts if p.best]
    if best:
        ax.scatter(
            [p.x for p in best], [figure.placed(p.y, bad) for p in best], **BEST, label=best_label(best[0].trial)
        )


def _medians(ax: Any, a: Axis, pts: Sequence[Point]) -> None:
    """A categorical value's median score as a short black bar across its column."""
    for pos, _ in a.ticks:
        ys = [p.y for p in pts if abs(p.x - pos) <= 0.5 and not p.diverged]
        if ys:
            ax.plot(
                [pos - 0.4, pos + 0.4], [figure.clip(statistics.median(ys))] * 2, color="black", lw=2, label="median"
            )


def draw_map(ctx: Context, x: Axis, y: Axis, epoch: int | None) -> Figure:
    """The learning rate (x) against β (y, on a log(1 − β) axis), coloured by the score at
    ``epoch``; a diverged trial is a red cross, the best trial ringed."""
    fig = figure.new(7.5, 5.2)
    ax = fig.subplots()
    pts = points(ctx, x, epoch, other=y)
    score = {s.trial.trial_id: s for s in ctx.scores_at(epoch)}
    ok = [p for p in pts if not score[p.trial].diverged]
    values = [figure.clip(score[p.trial].value) for p in ok]  # the colour scale's span must stay finite
    cmap = matplotlib.colormaps["viridis" if ctx.mode == "max" else "viridis_r"]
    if ok:
        lo, hi = min(values), max(values)
        norm = Normalize(lo, hi if hi > lo else lo + max(1e-9, abs(lo) * 1e-6))  # an empty span: one not lost in lo
        mappable = ax.scatter(
            [p.x for p in ok],
            [p.y for p in ok],
            c=values,
            cmap=cmap,
            norm=norm,
            s=40,
            edgecolors="black",
            linewidths=0.3,
            label="trial (colour: score)",
        )
        bar = fig.colorbar(mappable, ax=ax)
        bar.set_label(ctx.budget_text(epoch) + (" (brighter is better)"))
        if figure.clipped(score[p.trial].value for p in ok):
            figure.note(ax, figure.CLIPPED)
    gone = [p for p in pts if score[p.trial].diverged]
    if gone:
        ax.scatter([p.x for p in gone], [p.y for p in gone], marker="x", c="tab:red", s=40, label="diverged")
    best = [p for p in pts if p.best]
    if best:
        ax.scatter([p.x for p in best], [p.y for p in best], **BEST, label=best_label(best[0].trial))
    x.apply(ax, "x")
    y.apply(ax, "y")
    ax.grid(True, alpha=0.25)
    ax.set_title(
        f"Where is the good region in {x.parameter.path} × {y.parameter.path}? "
        f"{ctx.budget_text(epoch)}, both on log axes",
        fontsize=10,
    )
    figure.legend_outside(fig, ax)
    return fig


def figures(ctx: Context) -> tuple[list[Drawn], list[str]]:
    """The grid and the map, and one line for each that does not apply."""
    out, notes = [], []
    params = list(ctx.params.values())
    if not params:
        return [], ["Nothing was searched: no figure of the good region."]
    if not any(ctx.scores_at(b) for b in (ctx.budgets or [None])):
        return [], ["No trial has reported a score yet."]
    axes = [axis(p) for p in params]
    budgets = grid_budgets(ctx)
    out.append(Drawn("region.png", draw_grid(ctx, axes, budgets), f"{ctx.metric} against each parameter"))
    pair = ctx.lr_and_beta()
    if pair is None:
        notes.append(
            "No learning rate × (1 − β) map: this run did not search both a learning rate (a path ending in "
            "lr) and a one_minus_log_uniform β."
        )
    else:
        lr, beta = pair
        out.append(
            Drawn("lr_beta.png", draw_map(ctx, axis(lr), axis(beta), ctx.budget), f"{lr.path} × {beta.path} map")
        )
    return out, notes
