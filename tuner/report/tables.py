"""What was run and what came out: the summary, the top trials and the provenance tables."""

from __future__ import annotations

from tuner.records import EXPORT_FILE, TrialRecord, TrialStatus
from tuner.report.context import Context
from tuner.report.page import p, table
from tuner.report.retest import params_text
from tuner.space import short

TOP = 10


def summary(ctx: Context) -> str:
    """Trials by status, epochs trained against the full budget, the best trial."""
    run = ctx.run
    counts: dict[str, int] = {}
    for t in run.trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    max_t = run.sweep.max_t
    trained = sum(t.epochs for t in run.trials)
    full = len(run.trials) * int(max_t) if max_t else 0
    budget = (
        f"{trained} of a full budget of {full} ({len(run.trials)} × {max_t})"
        + (f": {100 * trained / full:.0f}%" if full else "")
        if max_t
        else f"{trained} (no full budget: the sweep states no max_t)"
    )
    rows = [
        [
            "run",
            f"{run.meta.name or run.path.name} ({run.meta.status.value}), "
            f"created {run.meta.created or '?'}, finished {run.meta.finished or '–'}",
        ],
        ["rounds", str(len(run.meta.rounds))],
        [
            "trials",
            f"{len(run.trials)} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
            if run.trials
            else "none yet",
        ],
        ["epochs trained", budget],
        ["metric", f"{run.metric} ({run.mode})"],
        ["scheduler", run.sweep.scheduler.describe()],
    ]
    best = ctx.best
    if best is not None:
        rows.append(
            [
                "best score",
                f"{best.score(run.metric):.4g} (trial {best.trial_id}, round {best.round}, "
                f"{status(best)}, {best.epochs} epochs)",
            ]
        )
        rows.append(["best params", params_text(best.params)])
        last = best.history[-1] if best.history else {}
        shown = {m: last[m] for m in ctx.run.metrics() if isinstance(last.get(m), (int, float))}
        if len(shown) > 1:
            rows.append(["best's metrics", ", ".join(f"{m} {v:.4g}" for m, v in shown.items())])
    elif any(t.history for t in run.trials):
        rows.append(["best score", f"none: no trial reported a finite {run.metric} (nothing to export)"])
    else:
        rows.append(["best score", "no trial has reported a score yet"])
    rows.append(["export", str(run.path / EXPORT_FILE) if ctx.export is not None else "none"])
    return table(["", ""], rows, header=False)


MAX_METRICS = 6  # columns of the top table: the sweep's metric first, then what else the trials reported


def top(ctx: Context) -> str:
    """The best trials by their last score, best first, with every metric they reported."""
    ranked = ctx.run.ranked()[:TOP]
    if not ranked:
        return p("No trial has reported a score yet.")
    metrics = ctx.run.metrics()[:MAX_METRICS]
    return table(
        ["#", *metrics, "status", "epochs", "round", "trial", "params"],
        [
            [
                str(i + 1),
                *(_num(t.score(m)) for m in metrics),
                status(t),
                str(t.epochs),
                str(t.round),
                t.trial_id,
                params_text(t.params),
            ]
            for i, t in enumerate(ranked)
        ],
    )


def provenance(ctx: Context) -> str:
    """Where the run came from: the sweep file and its hash, the commit, data, versions, cluster."""
    run = ctx.run
    prov = run.meta.provenance
    rows = [[k, short(prov[k], 200)] for k in ("sweep_file", "sweep_sha256", "git_commit") if prov.get(k)]
    data = prov.get("data") or {}
    if isinstance(data, dict) and data:
        rows.append(["data", f"{short(data.get('name', '?'))} sha256 {short(data.get('sha256', '?'), 80)}"])
    versions = prov.get("versions") or {}
    if isinstance(versions, dict):
        rows += [[f"version of {k}", short(v)] for k, v in versions.items()]
    if run.meta.cluster:
        rows.append(["cluster", ", ".join(f"{k} {short(v)}" for k, v in run.meta.cluster.items())])
    rows.append(["run directory", str(run.path.resolve())])
    return table(["", ""], rows, header=False)


def status(t: TrialRecord) -> str:
    """A trial's status, with the one-line error of a trial that failed (stopped as hung...)."""
    if t.status is TrialStatus.ERROR and t.error:
        return f"{t.status.value}: {short(t.error, 200)}"
    return t.status.value


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"
