"""The report of a run: one self-contained HTML page that answers what a sweep tells.

    tuner report runs/quickstart            # runs/quickstart/report/index.html
    tuner report runs/quickstart --watch    # rewritten every 10 s while the run goes on
    write_report("runs/quickstart", "out")  # out/index.html

Each section is titled by the question it answers: which parameters matter
(:mod:`~tuner.report.importance`), where the good region is (:mod:`~tuner.report.region`,
:mod:`~tuner.report.interactive`), how the search progressed (:mod:`~tuner.report.progress`),
what ASHA did (:mod:`~tuner.report.asha`), where the time went (:mod:`~tuner.report.timeline`),
whether the best holds up on fresh seeds (:mod:`~tuner.report.retest`) and how refine rounds
narrowed the ranges (:mod:`~tuner.report.rounds`). Trials are compared at a common budget
(:mod:`~tuner.report.context`), never by last scores of different budgets.

It reads the run directory only (no Ray, no code named in it), so it works on a finished,
running or failed run. The page embeds its figures and plotly.js and loads nothing; the
static figures are also written beside it as PNG files, each atomically and before the page,
so a page never names a half-written figure. What the page shows: docs/report.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuner.errors import InputError, warn_stderr
from tuner.files import write_bytes, write_text
from tuner.outputs import check_output
from tuner.records import EXPORT_FILE, REPORT_DIR, Export, RunStatus
from tuner.report import asha, importance, page, progress, region, retest, rounds, tables, timeline
from tuner.report.context import Context
from tuner.report.page import Folded, Section, View, p, table
from tuner.results import load_run

__all__ = ["PAGE", "write_report", "write", "build", "default_output"]

PAGE = "index.html"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``RUN_DIR/report``); returns
    the page's path.

    Raises:
        InputError: the run directory is missing or not a run, its export (``best.yaml``) or a
            round's parameters are malformed, ``out_dir`` is a file, or (no ``out_dir`` given)
            ``RUN_DIR/report`` is a symbolic link. Nothing is written then.
    """
    return write(run_dir, out_dir)[0]


def write(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    refresh: int | None = None,
    warn: Callable[[str], None] = warn_stderr,
) -> tuple[Path, RunStatus]:
    """:func:`write_report`, and the run's status as read; ``refresh``: seconds after which the
    page reloads itself while the run is going (``--watch``; left out once it is over);
    ``warn``: told of trial folders that could not be read (the best may be among them)."""
    run = load_run(run_dir)
    if run.meta.status is not RunStatus.RUNNING:
        refresh = None
    export = _load_export(run.path / EXPORT_FILE)
    out = Path(out_dir) if out_dir is not None else default_output(run.path)
    if out.exists() and not out.is_dir():
        raise InputError(f"-o: {out}: exists and is not a folder")
    if out_dir is None:  # -o is checked by the command; this default before anything is drawn
        try:
            check_output(out, "RUN_DIR", folder=True)
        except InputError as e:
            raise InputError(f"{e.problems[0]}; write the report elsewhere with -o DIR") from None
    note = run.unreadable_note()
    if note is not None:
        warn(note)
    ctx = Context.of(run, export, out)
    sections = build(ctx)
    for s in sections:
        for d in s.figures:
            write_bytes(out / d.name, d.png)
    title = f"tuner report: {run.meta.name or run.path.name}"
    subtitle = f"{run.path.resolve()} ({run.meta.status.value})"
    return write_text(out / PAGE, page.render(title, subtitle, sections, refresh)), run.meta.status


def default_output(run_path: Path) -> Path:
    """The folder the report goes to when no ``-o`` is given: ``RUN_DIR/report``.

    A run directory can come from anyone (a copy, a download), and a ``report`` link planted
    in it would send the page and its figures wherever it points; an ``-o`` the user gives is
    theirs to choose, this default is not. Files inside the folder need no such check: each is
    written to a temporary file and renamed over, which replaces a link instead of following it.

    Raises:
        InputError: ``RUN_DIR/report`` is a symbolic link.
    """
    out = run_path / REPORT_DIR
    if out.is_symlink():
        raise InputError(
            f"{out}: is a symbolic link: the report is not written through a link inside a run directory "
            "(remove it, or name an output folder with -o)"
        )
    return out


def build(ctx: Context) -> list[Section]:
    """Every section of the report, in the page's order (figures drawn, nothing written).

    Raises:
        InputError: the export's ``retest:`` section is malformed.
    """
    entry = retest.latest(ctx.export, ctx.run.path / EXPORT_FILE)  # bad input before any drawing
    scored = bool(ctx.run.ranked())
    none_yet = p("No trial has reported a score yet.")
    out = [Section("What was run, and what came out?", [tables.summary(ctx)])]

    imp, drawn = importance.figures(ctx)
    s = Section("Which parameters matter?")
    if drawn:
        s.parts += [p(_importance_text(ctx, imp)), *drawn]
        names = list(imp.fanova)
        s.parts.append(
            table(
                ["parameter", "fANOVA", "PED-ANOVA"],
                [[k, f"{imp.fanova[k]:.3f}", f"{imp.ped_anova.get(k, 0):.3f}"] for k in names],
            )
        )
    else:
        s.parts.append(p(f"No importance: {imp.reason}."))
    out.append(s)

    s = Section("Where is the good region?")
    drawn, notes = region.figures(ctx)
    s.parts += [p(n) for n in notes]
    if drawn:
        from tuner.report import interactive

        s.parts.append(
            p(
                f"Each trial's {ctx.metric} at a common budget (each ASHA rung's epoch, then the full budget), "
                "against each parameter on the scale it was sampled on; a list of values shows a column per value "
                "with its median. The run's best trial is ringed in red."
            )
        )
        views = [
            ("scatter", interactive.scatters(ctx), "Zoom by dragging; a button per budget; hover for a trial."),
            ("map", interactive.lr_map(ctx), "Zoom by dragging; hover for a trial."),
            (
                "parallel",
                interactive.parallel(ctx),
                "Drag along an axis to keep the trials in a range; drag the range away to clear it.",
            ),
        ]
        by_name = {d.name: d for d in drawn}
        for (name, fig, caption), static in zip(views, ("region.png", "lr_beta.png", None)):
            if fig is not None:
                s.parts.append(View(name, fig, caption))
            if static in by_name:
                s.parts.append(Folded(by_name[static]) if fig is not None else by_name[static])
    elif scored:
        s.parts.append(none_yet)
    out.append(s)

    tl, tl_drawn = timeline.figures(ctx)
    s = Section("How did the search progress?")
    pr, drawn = progress.figures(ctx, tl)
    if drawn:
        s.parts += [p(_progress_text(ctx, pr)), *drawn]
    else:
        s.parts.append(none_yet if not scored else p(_no_progress(ctx, tl)))
    out.append(s)

    rs, drawn = asha.figures(ctx)
    s = Section("What did ASHA do?")
    s.parts.append(p(_asha_text(ctx, rs)))
    s.parts += drawn
    out.append(s)

    s = Section("Where did the time go?")
    if tl_drawn:
        s.parts += [p(timeline.summary(tl)), *tl_drawn]
    else:
        s.parts.append(p("The reports carry no clock times (timestamp, time_total_s): no timeline."))
    out.append(s)

    out.append(Section("Does the best hold up on fresh seeds?", list(retest.section(ctx, entry))))
    out.append(Section("How did refine rounds narrow the ranges?", list(rounds.section(ctx))))
    out.append(Section(f"The top {tables.TOP} trials", [tables.top(ctx)]))
    out.append(Section("Where did it come from?", [tables.provenance(ctx)]))
    return out


def _importance_text(ctx: Context, imp: importance.Importance) -> str:
    return (
        f"Importance of each parameter for {ctx.budget_text(imp.epoch)} ({imp.n} trials): fANOVA is the share of "
        "the score's variance a parameter explains alone; PED-ANOVA how differently the top 10% of trials are "
        "spread over it than all trials are. Each evaluator's importances sum to 1."
    )


def _progress_text(ctx: Context, pr: progress.Progress) -> str:
    text = (
        f"The best {ctx.metric} any trial reported so far, against wall time and against the epochs all trials spent."
    )
    if pr.random:
        max_t = ctx.run.sweep.max_t
        text += (
            f" Random search at the full budget ({max_t} epochs a trial) is estimated from this run's own trials: the "
            f"expected best of k of them for k × {max_t} epochs; a trial stopped early stands in with its last score, "
            f"which its full budget would likely have raised. This run spent {pr.spent} epochs; random search of all "
            f"{len(ctx.run.trials)} configurations would have spent {len(ctx.run.trials) * int(max_t or 0)}."
        )
    return text


def _no_progress(ctx: Context, tl: timeline.Timeline) -> str:
    """Why the progress has no figure though some trial reported a score."""
    if tl.segments:  # the clock times are there (the timeline draws them): no finite score is
        return f"No trial reported a finite {ctx.metric}: no best so far to draw."
    return "The reports carry no clock times: no progress over time."


def _asha_text(ctx: Context, rs: list[asha.Rung]) -> str:
    sched = ctx.run.sweep.scheduler
    if sched.name != "asha":
        budget = f"a budget of {ctx.run.sweep.max_t} epochs" if ctx.run.sweep.max_t else "no stated budget"
        return f"No early stopping: every trial had {budget}. The learning curves:"
    if not rs:
        return f"{sched.describe()}: no rung below the full budget."
    counts = "; ".join(f"epoch {r.epoch}: {len(r.promoted)} of {r.reached} promoted{_by_bracket(r)}" for r in rs)
    recorded = any(r.brackets for r in rs)
    source = (
        "ASHA's rung records"
        if recorded
        else "the trials' histories (no rung records: a trial that reported a rung's epoch counts as recorded there)"
    )
    return (
        f"{sched.describe()}: at each rung a trial goes on only if its {ctx.metric} is in the best "
        f"1/{sched.reduction_factor:g} of those recorded there (in its bracket). From {source}: {counts}."
    )


def _by_bracket(r: asha.Rung) -> str:
    if len(r.brackets) < 2:
        return ""
    return " (" + ", ".join(f"bracket {b}: {n} of {k}" for b, n, k in r.brackets) + ")"


def _load_export(path: Path) -> Export | None:
    if not path.is_file():
        return None
    from tuner import export_file

    return export_file.read(path)
