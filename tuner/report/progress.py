"""How did the search progress? The best score so far against wall time and against epochs
spent, beside what random search at the full budget would have reached for the same epochs.

"Best so far" is the best value any trial reported at any epoch up to that moment. The
random-search equivalent is an estimate from this run's own trials: random search trains each
configuration for the full budget, so k configurations cost k × ``max_t`` epochs, and the
expected best of k drawn from these N trials (without replacement) is
Σᵢ vᵢ · C(N − i, k − 1) / C(N, k) over the scores sorted best first. A trial ASHA stopped
stands in with its last score, which its full budget would likely have raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from tuner.records import TrialStatus, sign, worst
from tuner.report import figure
from tuner.report.context import Context
from tuner.report.figure import Drawn
from tuner.report.timeline import Timeline

MAX_POINTS = 200  # points of the random-search curve (k is spread evenly up to N)


@dataclass
class Progress:
    """The best-so-far steps and the random-search estimate."""

    wall: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, best so far)
    epochs: list[tuple[int, float]] = field(default_factory=list)  # (epochs spent, best so far)
    random: list[tuple[int, float]] = field(default_factory=list)  # (k × max_t epochs, expected best of k)
    spent: int = 0  # epochs the run trained


def progress(ctx: Context, tl: Timeline) -> Progress:
    """The run's progress from its reports' clock times (empty when they have none)."""
    reports = sorted((when, s.trial, epoch) for s in tl.segments for epoch, when in s.reports)  # one an epoch
    value = {
        (t.trial_id, int(h["epoch"])): t.score_at(ctx.metric, int(h["epoch"]))
        for t in ctx.run.trials
        for h in t.history
        if not h.get("diverged")
    }
    out = Progress(spent=len(reports))
    s = sign(ctx.mode)
    best = -math.inf
    for n, (when, trial, epoch) in enumerate(reports, start=1):
        v = value.get((trial, epoch))
        if v is not None and math.isfinite(v) and s * v > best:
            best = s * v
            out.wall.append((when, figure.clip(v)))  # drawn: within the bound matplotlib can draw
            out.epochs.append((n, figure.clip(v)))
    if out.wall:  # the line goes on to the last report
        out.wall.append((reports[-1][0], out.wall[-1][1]))
        out.epochs.append((len(reports), out.epochs[-1][1]))
    out.random = random_equivalent(ctx)
    return out


def random_equivalent(ctx: Context) -> list[tuple[int, float]]:
    """(k × max_t, expected best of k of this run's trials at the full budget) for k = 1..N."""
    max_t = ctx.run.sweep.max_t
    if not max_t:
        return []
    bad = worst(ctx.mode, ctx.metric)
    s = sign(ctx.mode)
    scores = []
    for t in ctx.run.trials:
        v = t.score(ctx.metric)
        if t.status is TrialStatus.DIVERGED or v is None or not math.isfinite(v):
            v = bad
        scores.append(v)
    scores.sort(key=lambda v: -s * v)  # best first
    n = len(scores)
    if not n:
        return []
    finite = [v for v in scores if math.isfinite(v)]
    floor = min(finite, key=lambda v: s * v) if finite else 0.0
    # the expectation needs numbers, and ones whose weighted sum cannot overflow
    values = [figure.clip(v) if math.isfinite(v) else figure.clip(floor) for v in scores]
    ks = sorted({max(1, round(i * n / MAX_POINTS)) for i in range(1, MAX_POINTS + 1)} | {1, n})
    out = []
    for k in ks:
        total = math.comb(n, k)
        # each weight as an exact ratio of integers: the binomials alone outgrow a float past ~1000 trials
        e = sum(v * (math.comb(n - i, k - 1) / total) for i, v in enumerate(values, start=1) if n - i >= k - 1)
        out.append((k * int(max_t), e))
    return out


def draw(ctx: Context, pr: Progress) -> Figure:
    """Two panels: best so far against wall time; against epochs spent with random search's estimate."""
    fig = figure.new(10.0, 4.2)
    left, right = fig.subplots(1, 2)
    left.step([t for t, _ in pr.wall], [v for _, v in pr.wall], where="post", color="tab:blue", label="best so far")
    left.set_xlim(left=0)  # from the run's creation: the start-up shows
    left.set_xlabel("seconds since the run was created")
    left.set_ylabel(f"best {ctx.metric} so far (any trial, any epoch)")
    left.set_title("against wall time", fontsize=9)
    right.step(
        [e for e, _ in pr.epochs], [v for _, v in pr.epochs], where="post", color="tab:blue", label="best so far"
    )
    if pr.random:
        right.plot(
            [e for e, _ in pr.random],
            [v for _, v in pr.random],
            color="tab:orange",
            ls="--",
            label=f"random search at the full budget ({ctx.run.sweep.max_t} epochs a trial), estimated",
        )
        right.axvline(pr.spent, color="0.4", lw=0.8, ls=":", label=f"epochs this run spent ({pr.spent})")
    right.set_xlabel("epochs spent (all trials)")
    right.set_ylabel(f"best {ctx.metric} so far")
    right.set_title("against epochs spent", fontsize=9)
    for ax in (left, right):
        ax.grid(True, alpha=0.25)
    fig.suptitle("How did the search progress?", fontsize=10)
    figure.legend_outside(fig, left, right)
    return fig


def figures(ctx: Context, tl: Timeline) -> tuple[Progress, list[Drawn]]:
    pr = progress(ctx, tl)
    if not pr.wall:
        return pr, []
    return pr, [Drawn("progress.png", draw(ctx, pr), "best so far against wall time and epochs")]
