"""The report of a run: one self-contained HTML page with its PNG figures beside it.

    tuner report runs/quickstart            # runs/quickstart/report/index.html
    write_report("runs/quickstart", "out")  # out/index.html

The page holds a summary (trials by status, epochs trained against the full budget, the
best score and parameters, provenance) and the figures that tell how the search went:
the metric against the learning rate coloured by β (``train.momentum`` for sgd, else
``train.beta1``), the metric against 1 - β, learning curves with ASHA's rung milestones,
parallel coordinates of the searched parameters on their own scales, the refine rounds'
ranges and, when the export has been re-tested, the retest's means and intervals. It reads
the run directory only (no Ray), so it works on a finished, running or failed run. The
figures are written before the page, each atomically, so a page never names a half-written
figure. The page loads nothing from the network.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from tuner import plots
from tuner.errors import InputError
from tuner.files import write_text
from tuner.records import EXPORT_FILE, REPORT_DIR, Export, RetestEntry, TrialRecord, history_path, test_metric
from tuner.records import Stats as RecordStats
from tuner.results import RunDir as Run
from tuner.results import load_run
from tuner.space import Parameter, short

PAGE = "index.html"
TOP = 10
# A retest's statistics on one split: (mean, 95% interval low, high, std), None when absent.
Stats = tuple[float, float, float, float] | None


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``RUN_DIR/report``);
    returns the page's path.

    Raises:
        InputError: the run directory is missing or not a run, its export (``best.yaml``)
            is unreadable, or ``out_dir`` is a file.
    """
    run = load_run(run_dir)
    export = _load_export(run.path / EXPORT_FILE)
    out = Path(out_dir) if out_dir is not None else run.path / REPORT_DIR
    if out.exists() and not out.is_dir():
        raise InputError(f"-o: {out}: exists and is not a folder")
    params = parameters(run)
    retest = _retest(export, run.path / EXPORT_FILE)  # checked before anything is written
    sections = [
        ("Summary", _summary(run, export)),
        ("Learning rate", _lr_section(run, params, out)),
        ("Momentum-like β", _beta_section(run, params, out)),
        ("Learning curves", _curves_section(run, out)),
        ("Searched parameters", _parallel_section(run, params, out)),
        ("Refine rounds", _rounds_section(run, out)),
        ("Retest", _retest_section(run, export, retest, out)),
        (f"Top {TOP}", _top_table(run)),
        ("Provenance", _provenance(run)),
    ]
    return write_text(out / PAGE, _page(run, sections))


# -- what the run searched --------------------------------------------------------------------


def round_parameters(run: Run) -> list[tuple[int, dict[str, Parameter]]]:
    """Each round's index and searched parameters (``run.json``'s ``rounds[*].parameters``;
    the sweep's own for a round that does not record them)."""
    sweep_params = {p.path: p.to_dict() for p in run.sweep.search.parameters}
    out = []
    for i, r in enumerate(run.meta.rounds):
        specs = r.parameters or sweep_params
        try:
            out.append((r.index, {p: Parameter.from_dict(p, s) for p, s in specs.items()}))
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            why = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise InputError(f"{run.path / 'run.json'}: rounds[{i}].parameters: {why}") from None
    if not out and sweep_params:
        out.append((0, {p: Parameter.from_dict(p, s) for p, s in sweep_params.items()}))
    return out


def parameters(run: Run) -> dict[str, Parameter]:
    """The searched parameters as the first round defines them (the widest ranges)."""
    rounds = round_parameters(run)
    return dict(rounds[0][1]) if rounds else {}


def beta_path(optimizer: str) -> str:
    """The momentum-like β of an optimizer: sgd's ``train.momentum``, adam's ``train.beta1``."""
    return "train.momentum" if optimizer == "sgd" else "train.beta1"


def trial_beta(t: TrialRecord, sweep: Any) -> tuple[str, float, bool]:
    """The trial's β: its path, value, and whether it was searched (else the sweep's)."""
    train = sweep.train
    path = beta_path(str(t.params.get("train.optimizer", train.get("optimizer", "sgd"))))
    if path in t.params:
        return path, float(t.params[path]), True
    return path, float(train.get(path.split(".", 1)[1], 0.0)), False


def _one_minus_log(beta: float) -> float:
    return math.log10(max(1.0 - beta, 1e-12))


def _scored(run: Run) -> list[TrialRecord]:
    return [t for t in run.trials if t.score(run.metric) is not None]


# -- sections: each returns its HTML (figures written on the way) ------------------------------


def _lr_section(run: Run, params: dict[str, Parameter], out: Path) -> str:
    scored = _scored(run)
    if "train.lr" not in params:
        return _p(f"train.lr was not searched (fixed at {run.sweep.train.get('lr')}): no learning-rate figure.")
    if not scored:
        return _p("No trial has reported a score yet.")
    betas = [trial_beta(t, run.sweep) for t in scored]
    searched = any(s for _, _, s in betas)
    points = [
        plots.Point(
            float(t.params["train.lr"]),
            float(t.score(run.metric)),  # type: ignore[arg-type]
            _one_minus_log(b) if searched else None,
            t.status.value,
        )
        for t, (_, b, _) in zip(scored, betas)
        if "train.lr" in t.params
    ]
    paths = sorted({p for p, _, _ in betas})
    note = ""
    colour = None
    if searched:
        colour = plots.Colour(f"β ({', '.join(paths)}), on a log(1 − β) scale", lambda z: f"{1 - 10**z:.4g}")
    else:
        fixed = sorted({b for _, b, _ in betas})
        note = f"β ({', '.join(paths)}) was not searched (fixed at {', '.join(f'{b:g}' for b in fixed)}): one colour"
    plots.scatter(
        out / "lr.png",
        points,
        xlabel="learning rate (train.lr, log scale)",
        metric=run.metric,
        mode=run.mode,
        colour=colour,
        title=f"{run.metric} against the learning rate",
        note=note,
    )
    text = (_p(note + ".") if note else "") + _img("lr.png", f"{run.metric} against the learning rate")
    return text


def _beta_section(run: Run, params: dict[str, Parameter], out: Path) -> str:
    scored = _scored(run)
    betas = [trial_beta(t, run.sweep) for t in scored]
    searched_paths = sorted({p for p in ("train.momentum", "train.beta1") if p in params})
    if not searched_paths:
        path = beta_path(str(run.sweep.train.get("optimizer", "sgd")))
        return _p(f"β ({path}) was not searched: no 1 − β figure.")
    if not scored:
        return _p("No trial has reported a score yet.")
    lr_searched = "train.lr" in params
    points = [
        plots.Point(
            max(1.0 - b, 1e-12),
            float(t.score(run.metric)),  # type: ignore[arg-type]
            math.log10(float(t.params["train.lr"])) if lr_searched and "train.lr" in t.params else None,
            t.status.value,
        )
        for t, (_, b, s) in zip(scored, betas)
        if s
    ]
    colour = plots.Colour("learning rate (log scale)", lambda z: f"{10**z:.2g}") if lr_searched else None
    note = "" if lr_searched else "train.lr was not searched: one colour"
    plots.scatter(
        out / "beta.png",
        points,
        xlabel=f"1 − β ({', '.join(searched_paths)}, log scale)",
        metric=run.metric,
        mode=run.mode,
        colour=colour,
        title=f"{run.metric} against 1 − β",
        note=note,
    )
    return _img("beta.png", f"{run.metric} against 1 − β")


def _curves_section(run: Run, out: Path) -> str:
    trials = [t for t in run.trials if t.history]
    if not trials:
        return _p("No trial has reported an epoch yet.")
    max_t = int(run.sweep.max_t or max(t.epochs for t in trials))
    scheduler = run.sweep.scheduler
    milestones = [m for m in scheduler.milestones() if m < max_t]
    curves = [
        plots.Curve([int(h["epoch"]) for h in t.history], [_num(h.get(run.metric)) for h in t.history], t.status.value)
        for t in trials
    ]
    if scheduler.name == "asha":
        how = (
            f"ASHA (grace period {scheduler.grace_period}, reduction factor "
            f"{scheduler.reduction_factor}): rung milestones at epoch "
            f"{', '.join(map(str, milestones)) or '(none below the budget)'} of {max_t}"
        )
    else:
        how = f"no early stopping: every trial has a budget of {max_t} epochs"
    plots.curves(
        out / "curves.png",
        curves,
        metric=run.metric,
        mode=run.mode,
        milestones=milestones,
        max_t=max_t,
        title=f"{len(trials)} trials; {how}",
    )
    return _p(how + ". A stopped trial ends in a bar, a diverged one in a red cross.") + _img(
        "curves.png", "learning curves"
    )


def _axis(p: Parameter, lo: float, hi: float) -> plots.Axis:
    label = f"{p.path}\n({'values' if p.categorical else p.scale.name})"
    return plots.Axis(label, lo, hi, p.ticks(lo, hi))


def _parallel_section(run: Run, params: dict[str, Parameter], out: Path) -> str:
    scored = _scored(run)
    if not params:
        return _p("Nothing was searched.")
    if not scored:
        return _p("No trial has reported a score yet.")
    rows, scores = [], []
    for t in scored:
        try:
            rows.append([params[p].to_latent(t.params[p]) for p in params])
        except (KeyError, ValueError, TypeError):
            continue  # a value outside the first round's set: not on these axes
        scores.append(float(t.score(run.metric)))  # type: ignore[arg-type]
    if not rows:
        return _p("No trial holds a value of every searched parameter.")
    axes = []
    bounds = {p: list(param.latent_bounds()) for p, param in params.items()}
    for _, rp in round_parameters(run)[1:]:
        for p, param in rp.items():
            if p in bounds and not param.categorical:
                lo, hi = param.latent_bounds()
                bounds[p] = [min(bounds[p][0], lo), max(bounds[p][1], hi)]
    for j, (p, param) in enumerate(params.items()):
        lo = min([bounds[p][0]] + [r[j] for r in rows])
        hi = max([bounds[p][1]] + [r[j] for r in rows])
        axes.append(_axis(param, lo, hi))
    plots.parallel(out / "parallel.png", axes, rows, scores, metric=run.metric, mode=run.mode)
    return _p(
        "Each axis is a parameter on its own scale: log10 for log-uniform, log10(1 − β) for "
        "one_minus_log_uniform, the index for a list of values; labels are the values themselves."
    ) + _img("parallel.png", "parallel coordinates of the searched parameters")


def _rounds_section(run: Run, out: Path) -> str:
    rounds = round_parameters(run)
    rows = []
    for index, rp in rounds:
        in_round = [t for t in run.ranked() if t.round == index]
        best = f"{in_round[0].score(run.metric):.4g}" if in_round else "–"
        n = sum(t.round == index for t in run.trials)
        for p, param in rp.items():
            if param.categorical:
                continue
            rows.append([str(index), p, str(param.distribution), f"{param.low:.4g}", f"{param.high:.4g}", str(n), best])
    if not rows:
        return _p("No numeric parameter was searched.")
    text = ""
    if len(rounds) <= 1:
        text += _p("One round only (no refine rounds): the ranges are the sweep file's.")
    else:
        panels = []
        numeric = [p for p, param in rounds[0][1].items() if not param.categorical]
        for p in numeric:
            per_round = [(i, rp[p]) for i, rp in rounds if p in rp]
            lo = min(param.latent_bounds()[0] for _, param in per_round)
            hi = max(param.latent_bounds()[1] for _, param in per_round)
            points = []
            for t in run.trials:
                if p in t.params:
                    try:
                        points.append((t.round, rounds[0][1][p].to_latent(t.params[p])))
                    except (ValueError, TypeError):
                        pass
            panels.append(
                plots.RangePanel(
                    _axis(rounds[0][1][p], lo, hi).label.replace("\n", " "),
                    [(i, *param.latent_bounds()) for i, param in per_round],
                    points,
                    rounds[0][1][p].ticks(lo, hi),
                )
            )
        plots.ranges(out / "rounds.png", panels)
        text += _p(f"{len(rounds)} rounds: each refine round narrows the ranges around the best configurations.")
        text += _img("rounds.png", "each round's ranges")
    return text + _table(["round", "parameter", "distribution", "min", "max", "trials", f"best {run.metric}"], rows)


def _retest(export: Export | None, source: Path) -> RetestEntry | None:
    """The export's latest retest (None when there is none). Raises InputError on a malformed
    section, before anything is written."""
    if export is None or export.retest is None:
        return None
    return RetestEntry.from_dict(export.retest, str(source), "retest")


def _stats(s: RecordStats | None) -> Stats:
    """(mean, ci low, ci high, std) of one statistic (None if absent); without an interval
    it is mean ± std."""
    if s is None:
        return None
    lo, hi = s.ci95 if s.ci95 else (s.mean - s.std, s.mean + s.std)
    return s.mean, lo, hi, s.std


def _retest_section(run: Run, export: Export | None, retest: RetestEntry | None, out: Path) -> str:
    source = run.path / EXPORT_FILE
    if export is None:
        return _p(f"No retest yet: there is no export ({EXPORT_FILE}) in the run directory.")
    if retest is None:
        return _p(f"No retest yet (tuner retest {source} re-trains the best configurations on fresh seeds).")
    search = {str(t.trial): t.score for t in export.top}
    counterpart = test_metric(retest.metric or run.metric)
    bars, rows = [], []
    for i, r in enumerate(retest.results):
        val = _stats(r.val)
        test = _stats(r.test.get(counterpart) if counterpart else None) or (
            _stats(next(iter(r.test.values()))) if r.test else None
        )
        score = r.search_score if r.search_score is not None else search.get(str(r.trial))
        bars.append(
            plots.RetestBar(
                f"#{i + 1} {r.trial or ''}", val and val[:3], test and test[:3], None if score is None else _num(score)
            )
        )
        rows.append(
            [
                str(i + 1),
                str(r.trial or ""),
                _params_text(r.params),
                _stats_text(val),
                _stats_text(test),
                "–" if score is None else f"{_num(score):.4g}",
            ]
        )
    plots.retest(out / "retest.png", bars, metric=export.metric)
    facts = [
        f"{len(retest.seeds)} seeds",
        f"top {retest.top_k or len(rows)}",
        f"created {retest.created or '?'}",
        f"{retest.seconds:.0f} s",
        "ranking changed" if retest.ranking_changed else "ranking unchanged",
        "drift detected" if retest.drift else "no drift",
    ]
    history = history_path(source)
    if history.is_file():
        n = sum(1 for line in history.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip())
        facts.append(f"{n} retest(s) in {history.name}")
    text = _p("Latest retest: " + ", ".join(facts) + ".")
    for m in retest.messages:
        text += _p(str(m))
    return (
        text
        + _img("retest.png", "retest means and intervals")
        + _table(
            ["#", "trial", "params", "validation mean ± std [95% CI]", "test mean ± std [95% CI]", "search score"], rows
        )
    )


def _stats_text(s: Stats) -> str:
    return "–" if s is None else f"{s[0]:.4g} ± {s[3]:.2g} [{s[1]:.4g}, {s[2]:.4g}]"


# -- tables -----------------------------------------------------------------------------------


def _summary(run: Run, export: dict[str, Any] | None) -> str:
    counts: dict[str, int] = {}
    for t in run.trials:
        counts[t.status.value] = counts.get(t.status.value, 0) + 1
    max_t = int(run.sweep.max_t or 0)
    trained, full = sum(t.epochs for t in run.trials), len(run.trials) * max_t
    ranked = run.ranked()
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
        [
            "epochs trained",
            f"{trained} of a full budget of {full} ({len(run.trials)} × {max_t})"
            + (f": {100 * trained / full:.0f}%" if full else ""),
        ],
        ["metric", f"{run.metric} ({run.mode})"],
    ]
    if ranked:
        best = ranked[0]
        rows.append(
            [
                "best score",
                f"{best.score(run.metric):.4g} (trial {best.trial_id}, round {best.round}, "
                f"{best.status.value}, {best.epochs} epochs)",
            ]
        )
        rows.append(["best params", _params_text(best.params)])
    else:
        rows.append(["best score", "no trial has reported a score yet"])
    rows.append(["export", str(run.path / EXPORT_FILE) if export is not None else "none"])
    return _table(["", ""], rows, header=False)


def _top_table(run: Run) -> str:
    ranked = run.ranked()[:TOP]
    if not ranked:
        return _p("No trial has reported a score yet.")
    return _table(
        ["#", run.metric, "status", "epochs", "round", "trial", "params"],
        [
            [
                str(i + 1),
                f"{t.score(run.metric):.4g}",
                t.status.value,
                str(t.epochs),
                str(t.round),
                t.trial_id,
                _params_text(t.params),
            ]
            for i, t in enumerate(ranked)
        ],
    )


def _provenance(run: Run) -> str:
    prov = run.meta.provenance
    rows = [[k, short(prov[k], 200)] for k in ("sweep_file", "sweep_sha256", "git_commit") if prov.get(k)]
    data = prov.get("data") or {}
    if data:
        rows.append(["data", f"{data.get('name', '?')} sha256 {data.get('sha256', '?')}"])
    for k, v in (prov.get("versions") or {}).items():
        rows.append([f"version of {k}", str(v)])
    cluster = run.meta.cluster
    if cluster:
        rows.append(["cluster", ", ".join(f"{k} {short(v)}" for k, v in cluster.items())])
    rows.append(["run directory", str(run.path.resolve())])
    return _table(["", ""], rows, header=False)


# -- HTML -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } img { max-width: 100%; display: block; margin: .5em 0; }
"""


def _page(run: Run, sections: list[tuple[str, str]]) -> str:
    title = f"tuner report: {run.meta.name or run.path.name}"
    body = "".join(f"<section><h2>{html.escape(name)}</h2>\n{content}</section>\n" for name, content in sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}'
        f"</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"<p>{html.escape(str(run.path.resolve()))}</p>\n{body}</body>\n</html>\n"
    )


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>\n"


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">\n'


def _table(head: list[str], rows: list[list[str]], header: bool = True) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return "\n".join(out) + "\n</table>\n"


def _params_text(params: Any) -> str:
    if not isinstance(params, dict):
        return short(params)
    return ", ".join(f"{k}={short(v)}" for k, v in params.items())


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _load_export(path: Path) -> Export | None:
    if not path.is_file():
        return None
    from tuner import export_file as export

    return export.read(path)
