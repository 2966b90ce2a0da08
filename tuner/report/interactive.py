"""The report's interactive views, drawn with plotly: parallel coordinates to filter by
brushing, zoomable scatters of the score against each parameter (a button per budget), and
the learning rate × (1 − β) map. plotly.js is embedded in the page once (:func:`plotly_js`),
so the page loads nothing from the network.

Axes come from :mod:`tuner.report.axes` (each parameter on its own scale); parallel
coordinates have no log axis, so every parameter there is at its latent coordinate with ticks
naming its values.
"""

from __future__ import annotations

import html
import math
from typing import Any

from matplotlib.colors import to_hex

from tuner.records import sign
from tuner.report import figure
from tuner.report.axes import Axis, axis
from tuner.report.context import Context
from tuner.report.figure import BEST_COLOUR, STYLES
from tuner.report.region import Point, grid_budgets, points
from tuner.report.retest import params_text

CONFIG = {"displaylogo": False, "responsive": True}
# plotly's marker symbol for each of matplotlib's (figure.STYLES) markers.
SYMBOLS = {"o": "circle", "v": "triangle-down", "x": "x", "D": "diamond", "s": "square"}


def plotly_js() -> str:
    """plotly.js itself, to embed in the page's ``<script>``."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def to_div(fig: Any, name: str) -> str:
    """A plotly figure as a ``<div>`` and its script (plotly.js already on the page)."""
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=name, config=CONFIG))


def parallel(ctx: Context) -> Any | None:
    """Parallel coordinates at :attr:`Context.budget`: a dimension per parameter, the epochs
    trained and the score; drag along an axis to keep only the lines crossing that range."""
    import plotly.graph_objects as go

    params = ctx.params
    scores = ctx.scores_at(ctx.budget)
    rows = []
    for s in scores:
        try:
            rows.append(([p.to_latent(s.trial.params[path]) for path, p in params.items()], s))
        except (KeyError, ValueError, TypeError):
            continue
    if not params or not rows:
        return None
    _, _, bad = figure.edges([s.value for _, s in rows], ctx.mode)
    dims = []
    for j, (_, p) in enumerate(params.items()):
        lo, hi = p.latent_bounds()
        ticks = p.ticks(lo, hi)
        dims.append(
            {
                "label": p.axis_label(),
                "range": [lo, hi],
                "values": [z[j] for z, _ in rows],
                "tickvals": [t for t, _ in ticks],
                "ticktext": [label for _, label in ticks],
            }
        )
    dims.append({"label": "epochs trained", "values": [s.trial.epochs for _, s in rows]})
    values = [figure.placed(s.value, bad) for _, s in rows]
    dims.append({"label": ctx.budget_text(ctx.budget), "values": values})
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": values,
                "colorscale": "Viridis",
                "reversescale": ctx.mode == "min",
                "showscale": True,
                "colorbar": {"title": {"text": ctx.metric}},
            },
        )
    )
    fig.update_layout(
        title={"text": f"Filter by brushing: {ctx.budget_text(ctx.budget)}, {len(rows)} trials", "font": {"size": 14}},
        height=480,
        margin={"l": 80, "r": 40, "t": 90, "b": 30},
    )
    return fig


def _hover(ctx: Context, pts: list[Point], epoch: int | None) -> list[str]:
    by_id = {t.trial_id: t for t in ctx.run.trials}
    value = {s.trial.trial_id: s.value for s in ctx.scores_at(epoch)}
    return [
        html.escape(
            f"{p.trial} ({p.status.value}{', diverged' if p.diverged else ''}): "
            f"{ctx.budget_text(epoch)} = {value.get(p.trial, math.nan):.4g}"
        )
        + "<br>"
        + html.escape(params_text(by_id[p.trial].params))
        for p in pts
    ]


def _markers(ctx: Context, a: Axis, epoch: int | None, col: int, bad: float, visible: bool) -> list[Any]:
    import plotly.graph_objects as go

    pts = points(ctx, a, epoch)
    ys = [figure.placed(p.y, bad) for p in pts]
    style = [STYLES[p.status] for p in pts]
    traces = [
        go.Scatter(
            x=[p.x for p in pts],
            y=ys,
            mode="markers",
            marker={
                "symbol": [SYMBOLS[s.marker] for s in style],
                "color": [to_hex(s.colour) for s in style],
                "size": 8,
                "opacity": 0.75,
            },
            text=_hover(ctx, pts, epoch),
            hoverinfo="text",
            showlegend=False,
            visible=visible,
            xaxis=f"x{col}",
            yaxis="y",
        )
    ]
    best = [(p, y) for p, y in zip(pts, ys) if p.best]
    traces.append(
        go.Scatter(
            x=[p.x for p, _ in best],
            y=[y for _, y in best],
            mode="markers",
            marker={"symbol": "circle-open", "color": BEST_COLOUR, "size": 18, "line": {"width": 2}},
            name=f"best trial ({best[0][0].trial})" if best else "best trial",
            hoverinfo="skip",
            showlegend=False,
            visible=visible,
            xaxis=f"x{col}",
            yaxis="y",
        )
    )
    return traces


def scatters(ctx: Context) -> Any | None:
    """The score against each parameter at one budget, a button per budget; zoom with the mouse."""
    import plotly.graph_objects as go

    params = list(ctx.params.values())
    budgets = grid_budgets(ctx)
    if not params or not any(ctx.scores_at(b) for b in budgets):
        return None
    axes = [axis(p) for p in params]
    shown = ctx.budget if ctx.budget in budgets else budgets[-1]
    traces, owner = [], []
    for b in budgets:
        _, _, bad = figure.edges([s.value for s in ctx.scores_at(b)], ctx.mode)
        for c, a in enumerate(axes, start=1):
            new = _markers(ctx, a, b, c, bad, b == shown)
            traces += new
            owner += [b] * len(new)
    fig = go.Figure(traces)
    width = 1.0 / len(axes)
    layout: dict[str, Any] = {
        "height": 420,
        "margin": {"l": 70, "r": 20, "t": 100, "b": 60},
        "yaxis": {"title": {"text": ctx.metric}},
        "title": {
            "text": f"Where is the good region? {ctx.metric} against each parameter (zoom: drag)",
            "font": {"size": 14},
        },
    }
    for c, a in enumerate(axes, start=1):
        ax = a.plotly()
        ax["domain"] = [(c - 1) * width + 0.02, c * width - 0.02]
        ax["anchor"] = "y"
        layout["xaxis" if c == 1 else f"xaxis{c}"] = ax
    layout["updatemenus"] = [
        {
            "type": "buttons",
            "direction": "right",
            "x": 0,
            "y": 1.16,
            "xanchor": "left",
            "showactive": True,
            "active": budgets.index(shown),
            "buttons": [
                {"label": ctx.budget_text(b), "method": "update", "args": [{"visible": [o == b for o in owner]}]}
                for b in budgets
            ],
        }
    ]
    fig.update_layout(**layout)
    return fig


def lr_map(ctx: Context) -> Any | None:
    """The lr × (1 − β) map at :attr:`Context.budget`, colour by score, zoomable."""
    import plotly.graph_objects as go

    pair = ctx.lr_and_beta()
    if pair is None:
        return None
    x, y = axis(pair[0]), axis(pair[1])
    pts = points(ctx, x, ctx.budget, other=y)
    if not pts:
        return None
    score = {s.trial.trial_id: s.value for s in ctx.scores_at(ctx.budget)}
    _, _, bad = figure.edges(list(score.values()), ctx.mode)
    values = [figure.placed(score[p.trial], bad) for p in pts]
    fig = go.Figure(
        [
            go.Scatter(
                x=[p.x for p in pts],
                y=[p.y for p in pts],
                mode="markers",
                marker={
                    "color": values,
                    "colorscale": "Viridis",
                    "reversescale": sign(ctx.mode) < 0,
                    "showscale": True,
                    "size": 10,
                    "symbol": ["x" if p.diverged else "circle" for p in pts],
                    "colorbar": {"title": {"text": ctx.metric}},
                    "line": {
                        "width": [3 if p.best else 0.5 for p in pts],
                        "color": [BEST_COLOUR if p.best else "black" for p in pts],
                    },
                },
                text=_hover(ctx, pts, ctx.budget),
                hoverinfo="text",
            )
        ]
    )
    fig.update_layout(
        title={
            "text": f"{x.parameter.path} × {y.parameter.path}: {ctx.budget_text(ctx.budget)} (best: red outline)",
            "font": {"size": 14},
        },
        xaxis=x.plotly(),
        yaxis=y.plotly(),
        height=480,
        margin={"l": 80, "r": 20, "t": 60, "b": 60},
    )
    return fig
