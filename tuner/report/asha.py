"""What did ASHA do? How many trials reached each rung and were promoted past it, their
scores there, and every trial's learning curve with the best one highlighted.

A rung is an epoch at which ASHA judges a trial (:meth:`tuner.spec.SchedulerSpec.milestones`):
a trial goes on past it only if its score is in the best 1/η of those recorded there. The
trials counted at a rung are those ASHA recorded there, read from the run's rung records
(``asha-rungs.json``, :data:`tuner.records.RUNGS_FILE`: per bracket, per rung, the trial ids
and values), summed over the brackets that have the rung; a recorded trial was *promoted* when
it reported a later epoch. Without the records (a run from before them) the trials' histories
are the estimate: a trial *reached* a rung when it reported that epoch.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from tuner.errors import InputError
from tuner.files import load_json, read_bytes
from tuner.records import EPOCH, RUNGS_FILE, TrialStatus
from tuner.report import figure
from tuner.report.context import Context, Score
from tuner.report.figure import BEST, BEST_COLOUR, STYLES, Drawn, best_label


@dataclass
class Rung:
    """One rung: its epoch, the trials' scores there, how many went on past it, and (from the
    rung records) each bracket's (index, promoted, reached) at it."""

    epoch: int
    scores: list[Score]
    promoted: set[str]  # trial ids that reported a later epoch
    brackets: list[tuple[int, int, int]] = field(default_factory=list)  # empty: estimated from histories

    @property
    def reached(self) -> int:
        return len(self.scores)


def rungs(ctx: Context) -> list[Rung]:
    """Each rung below the full budget with the trials ASHA recorded there (none without
    ASHA); estimated from the histories when the run has no rung records.

    Raises:
        InputError: a rung record file is malformed (naming the file and key).
    """
    records = rung_records(ctx)
    out = []
    for m in ctx.budgets[:-1]:
        scores = ctx.scores_at(m)
        if records is None:
            reached = [s for s in scores if not s.diverged or s.trial.epochs == m]
            out.append(Rung(m, reached, {s.trial.trial_id for s in reached if s.trial.epochs > m}))
            continue
        by_id = {s.trial.trial_id: s for s in scores}
        later = {t.trial_id for t in ctx.run.trials if t.epochs > m}
        rung = Rung(m, [], set())
        for b, ids in sorted(records.get(m, {}).items()):
            here = [by_id[i] for i in ids if i in by_id]
            rung.scores += here
            went = {s.trial.trial_id for s in here} & later
            rung.promoted |= went
            rung.brackets.append((b, len(went), len(here)))
        out.append(rung)
    return out


def rung_records(ctx: Context) -> dict[int, dict[int, list[str]]] | None:
    """The trial ids ASHA recorded, by rung epoch and bracket, from every round's
    ``asha-rungs.json`` (None when no round has one). A milestone ASHA judges at its first
    report at or past it: epoch ⌈milestone⌉."""
    folders = dict.fromkeys(ctx.run.path / r.dir for r in ctx.run.meta.rounds)
    files = [f / RUNGS_FILE for f in folders if (f / RUNGS_FILE).is_file()]
    if not files:
        return None
    out: dict[int, dict[int, list[str]]] = {}
    for f in files:
        doc = load_json(read_bytes(f, what="ASHA rung records"), str(f))
        brackets = doc.get("brackets") if isinstance(doc, dict) else None
        if not isinstance(brackets, list):
            raise InputError(f"{f}: brackets: must be a list of brackets")
        for b, bracket in enumerate(brackets):
            for k, rung in enumerate(bracket if isinstance(bracket, list) else [None]):
                where = f"{f}: brackets[{b}][{k}]"
                m = rung.get("milestone") if isinstance(rung, dict) else None
                recorded = rung.get("recorded") if isinstance(rung, dict) else None
                if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m) or m < 0:
                    raise InputError(f"{where}.milestone: must be a number of epochs")
                if not isinstance(recorded, dict):
                    raise InputError(f"{where}.recorded: must be a mapping of trial ids to values")
                if m < 1e9:
                    ids = out.setdefault(math.ceil(m), {}).setdefault(b, [])
                    ids += [str(i) for i in recorded if i not in ids]
    return out


def draw_rungs(ctx: Context, rs: Sequence[Rung]) -> Figure:
    """Left: trials reaching and promoted past each rung; right: their scores there."""
    fig = figure.new(10.0, 4.2)
    left, right = fig.subplots(1, 2)
    xs = range(len(rs))
    names = [f"rung {k}\nepoch {r.epoch}" for k, r in enumerate(rs)]
    left.bar(xs, [r.reached for r in rs], width=0.5, color="tab:gray", alpha=0.5, label="reached the rung")
    left.bar(xs, [len(r.promoted) for r in rs], width=0.5, color="tab:blue", label="promoted past it")
    left.set_xlim(-0.75, len(rs) - 0.25)
    for x, r in zip(xs, rs):
        left.annotate(f"{len(r.promoted)} of {r.reached}", (x, r.reached), ha="center", va="bottom", fontsize=8)
    left.set_xticks(list(xs), names, fontsize=8)
    left.set_ylabel("trials")
    left.set_title("trials per rung", fontsize=9)
    lo, hi, bad = figure.edges([s.value for r in rs for s in r.scores], ctx.mode)
    best = ctx.best.trial_id if ctx.best else None
    groups: dict[str, list[tuple[float, float]]] = {"promoted": [], "stopped here": [], "diverged": []}
    ringed = []
    for x, r in zip(xs, rs):
        for s in r.scores:
            name = "diverged" if s.diverged else "promoted" if s.trial.trial_id in r.promoted else "stopped here"
            point = (x + _spread(s.trial.trial_id), figure.placed(s.value, bad))
            groups[name].append(point)
            if s.trial.trial_id == best:
                ringed.append(point)
    looks = {
        "promoted": {"marker": "o", "c": "tab:blue"},
        "stopped here": {"marker": "o", "facecolors": "none", "edgecolors": "tab:blue"},
        "diverged": {"marker": "x", "c": "tab:red"},
    }
    for name, pts in groups.items():
        if pts:
            right.scatter([x for x, _ in pts], [y for _, y in pts], s=24, label=name, **looks[name])
    if ringed and best is not None:
        right.scatter([x for x, _ in ringed], [y for _, y in ringed], **BEST, label=best_label(best))
    right.set_xticks(list(xs), names, fontsize=8)
    right.set_xlim(-0.6, len(rs) - 0.4)
    right.set_ylim(lo, hi)
    if figure.clipped(s.value for r in rs for s in r.scores):
        figure.note(right, figure.CLIPPED)
    right.set_ylabel(f"{ctx.metric} at the rung's epoch")
    right.set_title("scores at each rung", fontsize=9)
    for ax in (left, right):
        ax.grid(True, axis="y", alpha=0.25)
    fig.suptitle("What did ASHA do?", fontsize=10)
    figure.legend_outside(fig, left, right)
    return fig


def _spread(key: str) -> float:
    """A repeatable offset in [-0.25, 0.25] so that points of one rung do not hide each other."""
    return zlib.crc32(key.encode()) % 1001 / 1000 * 0.5 - 0.25


def draw_curves(ctx: Context) -> Figure:
    """Each trial's metric per epoch (colour: how it ended), ASHA's rungs as dashed lines
    named on the top axis, the best trial's curve thick and red."""
    trials = [t for t in ctx.run.trials if t.history]
    fig = figure.new(9.0, 4.8)
    ax = fig.subplots()
    values = [v for t in trials for h in t.history for v in [t.score_at(ctx.metric, int(h[EPOCH]))] if v is not None]
    lo, hi, bad = figure.edges(values, ctx.mode)
    best = ctx.best.trial_id if ctx.best else None
    for t in trials:
        style = STYLES[t.status]
        pts = [(int(h[EPOCH]), t.score_at(ctx.metric, int(h[EPOCH]))) for h in t.history if not h.get("diverged")]
        pts = [(e, figure.clip(v)) for e, v in pts if v is not None]
        ax.plot([e for e, _ in pts], [v for _, v in pts], color=style.colour, lw=0.9, alpha=0.45)
        if t.status is TrialStatus.DIVERGED:
            ax.plot(t.epochs, bad, marker="x", color=style.colour, ms=7, mew=2)
        elif t.status in (TrialStatus.STOPPED, TrialStatus.ERROR) and pts:
            ax.plot(*pts[-1], marker=style.marker, color=style.colour, ms=4, alpha=0.7)
    if best is not None and ctx.best is not None:
        pts = [(int(h[EPOCH]), ctx.best.score_at(ctx.metric, int(h[EPOCH]))) for h in ctx.best.history]
        pts = [(e, figure.clip(v) if v is not None else math.nan) for e, v in pts]  # None: a gap in the line
        ax.plot([e for e, _ in pts], [v for _, v in pts], color=BEST_COLOUR, lw=2.5, label=best_label(best), zorder=4)
    rungs_at = ctx.budgets[:-1]
    for m in rungs_at:
        ax.axvline(m, color="tab:purple", ls="--", lw=1)
    if rungs_at:
        top = ax.secondary_xaxis("top")
        top.set_xticks(rungs_at, [f"rung {k}" for k in range(len(rungs_at))], fontsize=8, color="tab:purple")
    max_t = ctx.run.sweep.max_t or max((t.epochs for t in trials), default=1)
    ax.set_xlim(0.5, max_t + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(lo, hi)
    if figure.clipped(values):
        figure.note(ax, figure.CLIPPED)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ctx.metric)
    ax.grid(True, alpha=0.25)
    ax.set_title(f"Learning curves of {len(trials)} trials", fontsize=10)
    counts = {s: sum(t.status is s for t in trials) for s in STYLES}
    handles = [
        Line2D([], [], color=STYLES[s].colour, marker=STYLES[s].marker, label=f"{STYLES[s].label} ({n})")
        for s, n in counts.items()
        if n
    ]
    handles += [h for h, lab in zip(*ax.get_legend_handles_labels()) if lab.startswith("best")]
    if rungs_at:
        handles.append(Line2D([], [], color="tab:purple", ls="--", label="ASHA rung"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
    return fig


def figures(ctx: Context) -> tuple[list[Rung], list[Drawn]]:
    """The rungs and their figure (none without ASHA), and the learning curves."""
    rs = rungs(ctx)
    out = []
    if rs and any(r.scores for r in rs):
        out.append(Drawn("asha.png", draw_rungs(ctx, rs), "trials and scores per ASHA rung"))
    if any(t.history for t in ctx.run.trials):
        out.append(Drawn("curves.png", draw_curves(ctx), "learning curves"))
    return rs, out
