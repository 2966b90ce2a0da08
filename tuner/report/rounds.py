"""How did refine rounds narrow the ranges? Each round's range of every numeric parameter, on
its own scale, with the trials that round ran."""

from __future__ import annotations

from matplotlib.figure import Figure

from tuner.report import figure
from tuner.report.axes import axis
from tuner.report.context import Context
from tuner.report.figure import Drawn
from tuner.report.page import p, table


def draw(ctx: Context) -> Figure:
    """A panel per numeric parameter: each round's range as a bar, its trials as dots, round 0 on top."""
    first = ctx.rounds[0][1]
    numeric = [path for path, prm in first.items() if not prm.categorical]
    fig = figure.new(7.5, 1.0 + 1.3 * len(numeric))
    axs = fig.subplots(len(numeric), 1, squeeze=False)
    for ax, path in zip(axs[:, 0], numeric):
        a = axis(first[path])
        for index, rp in ctx.rounds:
            if path in rp:
                lo, hi = rp[path].low, rp[path].high
                ends = [a.position(lo), a.position(hi)]
                if None not in ends:
                    ax.plot(ends, [index, index], color="tab:blue", lw=7, alpha=0.35, solid_capstyle="butt")
        dots = [(t.round, a.position(t.params[path])) for t in ctx.run.trials if path in t.params]
        dots = [(r, x) for r, x in dots if x is not None]
        if dots:
            ax.scatter([x for _, x in dots], [r for r, _ in dots], s=10, color="black", zorder=3)
        a.apply(ax)
        n = max(index for index, _ in ctx.rounds)
        ax.set_ylim(n + 0.6, -0.6)
        ax.set_yticks(range(n + 1), [f"round {r}" for r in range(n + 1)], fontsize=8)
        ax.grid(True, axis="x", alpha=0.25)
    fig.suptitle("How did refine rounds narrow the ranges?", fontsize=10)
    return fig


def section(ctx: Context) -> list[str | Drawn]:
    """The rounds' ranges as a figure (with more than one round) and a table."""
    rows = []
    for index, rp in ctx.rounds:
        ranked = ctx.run.ranked([index])
        best = f"{ranked[0].score(ctx.metric):.4g}" if ranked else "–"
        n = sum(t.round == index for t in ctx.run.trials)
        for path, prm in rp.items():
            if not prm.categorical:
                rows.append(
                    [str(index), path, str(prm.distribution), f"{prm.low:.4g}", f"{prm.high:.4g}", str(n), best]
                )
    if not rows:
        return [p("No numeric parameter was searched.")]
    parts: list[str | Drawn] = []
    if len(ctx.rounds) <= 1:
        parts.append(p("One round only (no refine rounds): the ranges are the sweep file's."))
    else:
        parts.append(
            p(f"{len(ctx.rounds)} rounds: each refine round narrows the ranges around the best configurations.")
        )
        parts.append(Drawn("rounds.png", draw(ctx), "each round's ranges"))
    head = ["round", "parameter", "distribution", "min", "max", "trials", f"best {ctx.metric}"]
    return parts + [table(head, rows)]
