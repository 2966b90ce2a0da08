"""Where did the time go? Each trial's time on its node, with the idle gaps between trials.

Ray Tune stamps each report in ``result.json`` with ``timestamp`` (whole seconds of the
clock) and ``time_total_s`` / ``time_this_iter_s`` (the trial's own running time, precise).
A trial's start on the clock is therefore known to within a second from every report
(``timestamp − time_total_s``); the latest of these bounds is taken, and every report's
time follows from it exactly. A restored trial starts a new segment (its ``time_total_s``
goes on from before the restore, its clock does not). Time 0 is when the run was created,
so the start-up before the first trial (Ray and its workers starting) shows as a gap.

A lane is one worker process (a node and a ``pid``): Ray Tune reuses a worker for trial after
trial, which therefore never overlap on it; a trial whose one-second bound would overlap the
one before it on its worker starts when that one ended.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tuner.records import EPOCH, NODE_ID, TrialRecord, TrialStatus
from tuner.report import figure
from tuner.report.context import Context
from tuner.report.figure import STYLES, Drawn, best_label

RESTORE_GAP_S = 2.0  # a jump of the clock start bigger than this: a new segment (restored)


@dataclass(frozen=True)
class Segment:
    """One stretch of a trial on one node: clock seconds since the run's start."""

    trial: str
    node: str
    worker: str  # the worker process's pid ("" when unknown)
    start: float
    end: float
    status: TrialStatus
    reports: list[tuple[int, float]]  # (epoch, when it was reported)


@dataclass
class Timeline:
    """Every segment, packed into lanes (one lane: one trial at a time) per node."""

    origin: float  # the clock time of t = 0 (seconds since the epoch)
    segments: list[Segment]
    lanes: list[tuple[str, list[Segment]]] = field(default_factory=list)  # (node, its segments)
    slots: int = 0  # trials the cluster could run at once (0: unknown)
    slots_why: str = ""

    @property
    def span(self) -> float:
        return max((s.end for s in self.segments), default=0.0)

    @property
    def busy(self) -> float:
        return sum(s.end - s.start for s in self.segments)

    @property
    def first_start(self) -> float:
        return min((s.start for s in self.segments), default=0.0)

    def utilisation(self) -> float:
        """Busy trial-seconds over slot-seconds from t = 0 to the last report."""
        slots = self.slots or len(self.lanes)
        return self.busy / (slots * self.span) if slots and self.span > 0 else 0.0


def _clock(row: dict[str, object], key: str) -> float | None:
    v = row.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return None
    # no clock reads beyond the bound figures draw (a timestamp is ~1e9 s); their differences and
    # the timeline's span would overflow
    return float(v) if abs(v) <= figure.LIMIT else None


@dataclass(frozen=True)
class _Raw:
    """A segment on the clock (absolute seconds): its start lies in [low, high]."""

    node: str
    worker: str
    low: float
    high: float
    duration: float
    reports: list[tuple[int, float]]  # (epoch, seconds after the start)


def segments(t: TrialRecord) -> list[_Raw]:
    """A trial's segments on the clock, with the bounds their reports put on their start."""
    groups: list[list[tuple[dict[str, object], float, float]]] = []  # rows with (clock - total, total)
    for row in t.history:
        ts, total = _clock(row, "timestamp"), _clock(row, "time_total_s")
        if ts is None or total is None:
            continue
        a = ts - total
        if groups and abs(a - max(x for _, x, _ in groups[-1])) <= RESTORE_GAP_S:
            groups[-1].append((row, a, total))
        else:
            groups.append([(row, a, total)])
    out = []
    for g in groups:
        # each report: timestamp <= clock < timestamp + 1, so the segment's clock origin lies in
        # [max(timestamp - total), min(timestamp - total) + 1]
        low, high = max(a for _, a, _ in g), min(a for _, a, _ in g) + 1.0
        first, tot0 = g[0][0], g[0][2]
        before = tot0 - (_clock(first, "time_this_iter_s") or tot0)  # a restored segment's earlier time
        reports = [(int(r[EPOCH]), tot - before) for r, _, tot in g]  # type: ignore[call-overload]
        last = g[-1][0]
        node = str(last.get(NODE_ID) or t.node_id or t.node or t.hostname or "local")
        worker = str(last.get("pid", ""))
        out.append(_Raw(node, worker, low + before, high + before, reports[-1][1], reports))
    return out


def timeline(ctx: Context) -> Timeline:
    """The run's timeline (empty when its reports carry no clock times)."""
    raw = sorted(((t, seg) for t in ctx.run.trials for seg in segments(t)), key=lambda x: x[1].low)
    created = _created(ctx.run.meta.created)
    lows = [s.low for _, s in raw]
    origin = created if created is not None and lows and created <= min(lows) else min(lows, default=0.0)
    free: dict[tuple[str, str], float] = {}  # when each worker's last segment ended
    segs = []
    for t, r in raw:
        start = r.low
        if r.worker:  # one trial at a time on a worker: not before the last one there ended, within bounds
            start = min(max(start, free.get((r.node, r.worker), start)), r.high)
            free[(r.node, r.worker)] = start + r.duration
        start -= origin
        reports = [(e, start + after) for e, after in r.reports]
        segs.append(Segment(t.trial_id, r.node, r.worker, start, start + r.duration, t.status, reports))
    tl = Timeline(origin, segs, _pack(segs))
    tl.slots, tl.slots_why = _slots(ctx)
    return tl


def _created(text: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _pack(segs: Sequence[Segment]) -> list[tuple[str, list[Segment]]]:
    """Per node, a lane per worker; segments of no known worker each into the first lane free
    by its start (a greedy interval packing)."""
    lanes: list[tuple[str, list[Segment]]] = []
    for node in sorted({s.node for s in segs}):
        mine: list[list[Segment]] = []
        for w in sorted({s.worker for s in segs if s.node == node and s.worker}):
            mine.append(sorted((s for s in segs if s.node == node and s.worker == w), key=lambda s: s.start))
        for s in sorted((s for s in segs if s.node == node and not s.worker), key=lambda s: s.start):
            lane = next((ln for ln in mine if ln[-1].end <= s.start + 0.05), None)
            if lane is None:
                mine.append([s])
            else:
                lane.append(s)
        lanes.extend((node, ln) for ln in mine)
    return lanes


def _slots(ctx: Context) -> tuple[int, str]:
    """How many trials the cluster could run at once, from ``run.json``'s cluster resources."""
    cluster, res = ctx.run.meta.cluster, ctx.run.sweep.resources
    cpus = cluster.get("CPU")
    if not isinstance(cpus, (int, float)) or res.cpu <= 0:
        return 0, ""
    n, why = int(cpus // res.cpu), f"{cpus:g} CPUs ÷ {res.cpu:g} CPU a trial"
    gpus = cluster.get("GPU")
    if res.gpu > 0 and isinstance(gpus, (int, float)) and gpus // res.gpu < n:
        n, why = int(gpus // res.gpu), f"{gpus:g} GPUs ÷ {res.gpu:g} GPU a trial"
    return n, why


def summary(tl: Timeline) -> str:
    """One sentence: busy time, wall time, slots and start-up."""
    slots = tl.slots or len(tl.lanes)
    how = f" ({tl.slots_why})" if tl.slots else " (the most that ran at once)"
    return (
        f"{len({s.trial for s in tl.segments})} trials ran {tl.busy:.1f} trial-seconds in {tl.span:.1f} s of wall "
        f"time on {slots} slot(s){how}: {100 * tl.utilisation():.0f}% busy, the rest idle. The first trial "
        f"started {tl.first_start:.1f} s after the run was created (Ray and its workers starting)."
    )


def draw(ctx: Context, tl: Timeline) -> Figure:
    """A lane per concurrent trial on each node; a bar per trial segment, coloured by how the
    trial ended; the best trial outlined in red; the gaps are idle time."""
    fig = figure.new(9.0, 1.6 + 0.35 * max(2, len(tl.lanes)))
    ax = fig.subplots()
    best = ctx.best.trial_id if ctx.best else None
    for y, (_, lane) in enumerate(tl.lanes):
        ax.broken_barh([(0, tl.span)], (y - 0.4, 0.8), color="0.93")  # the lane: idle unless a bar covers it
        for s in lane:
            style = STYLES[s.status]
            ax.broken_barh(
                [(s.start, s.end - s.start)],
                (y - 0.35, 0.7),
                facecolors=style.colour,
                edgecolors="red" if s.trial == best else "white",
                linewidth=2 if s.trial == best else 0.5,
                label=best_label(s.trial) if s.trial == best else style.label,
                alpha=0.85,
            )
    labels = [
        f"{n[:8]} · pid {lane[0].worker}" if lane[0].worker else f"{n[:8]} · slot {k}"
        for k, (n, lane) in enumerate(tl.lanes)
    ]
    ax.set_yticks(range(len(tl.lanes)), labels, fontsize=8)
    ax.set_ylim(len(tl.lanes) - 0.5, -0.5)
    ax.set_xlim(0, tl.span * 1.01 or 1)
    ax.set_xlabel("seconds since the run was created")
    ax.grid(True, axis="x", alpha=0.25)
    ax.set_ylabel("node · worker")
    ax.set_title(f"Where did the time go? {100 * tl.utilisation():.0f}% of the slots' time busy", fontsize=10)
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    handles["idle"] = Patch(color="0.93", label="idle")
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=min(5, len(handles)), fontsize=8
    )
    return fig


def figures(ctx: Context) -> tuple[Timeline, list[Drawn]]:
    tl = timeline(ctx)
    if not tl.segments:
        return tl, []
    return tl, [Drawn("timeline.png", draw(ctx, tl), "timeline of trials per node")]
