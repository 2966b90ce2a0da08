"""Which parameters matter? Their importance by Optuna's fANOVA and PED-ANOVA evaluators, at a
common budget.

Each trial enters with its score at one epoch (:attr:`Context.budget`: the highest ASHA rung
that enough trials reached), not its last score, which would mix budgets. Parameters enter on
the scale they were sampled on (their latent coordinate, :meth:`tuner.space.Parameter.to_latent`),
a list of values as its index, so that "where in the range" means what the search meant by
it. A diverged trial counts at the worst value: diverging is what a too-large learning rate
does, and it is part of why that parameter matters.

- fANOVA (Hutter et al., 2014): the share of the score's variance, under a random forest fitted
  to the trials, that each parameter explains alone.
- PED-ANOVA (Watanabe et al., 2023): how differently the top 10% of trials are spread over a
  parameter than all trials are; fast and meant for few trials.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from tuner.report import figure
from tuner.report.context import MIN_TRIALS, Context
from tuner.report.figure import Drawn
from tuner.space import Parameter


@dataclass
class Importance:
    """Importances (each evaluator's, summing to 1) at ``epoch`` over ``n`` trials; ``reason``
    says why there are none."""

    epoch: int | None
    n: int
    fanova: dict[str, float] = field(default_factory=dict)
    ped_anova: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def importance(ctx: Context, seed: int = 0) -> Importance:
    """The importance of each searched parameter at :attr:`Context.budget`."""
    epoch = ctx.budget
    params = ctx.params
    scores = ctx.scores_at(epoch)
    if not params:
        return Importance(epoch, 0, reason="nothing was searched")
    rows = []
    for s in scores:
        try:
            rows.append(({path: _coordinate(p, s.trial.params[path]) for path, p in params.items()}, s.value))
        except (KeyError, ValueError, TypeError):
            continue  # a value outside the first round's set: not on these scales
    if len(rows) < MIN_TRIALS:
        return Importance(
            epoch, len(rows), reason=f"too few trials at {ctx.budget_text(epoch)} ({len(rows)}; {MIN_TRIALS} needed)"
        )
    finite = [v for _, v in rows if math.isfinite(v)]
    if not finite or max(finite) == min(finite):
        return Importance(epoch, len(rows), reason=f"every trial has the same {ctx.budget_text(epoch)}")
    bad = min(finite) if ctx.mode == "max" else max(finite)  # a diverged trial: the worst seen
    # within the bound figures draw: the evaluators' variances of values near the largest double overflow
    rows = [(x, figure.clip(v) if math.isfinite(v) else figure.clip(bad)) for x, v in rows]
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = {path: _distribution(p) for path, p in params.items()}
    study = optuna.create_study(direction="maximize" if ctx.mode == "max" else "minimize")
    study.add_trials([optuna.trial.create_trial(params=x, distributions=dists, value=v) for x, v in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both evaluators are "experimental"; PED-ANOVA warns on few top trials
        fanova = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed), normalize=True)
        ped = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), normalize=True)
    return Importance(epoch, len(rows), {k: float(v) for k, v in fanova.items()}, {k: float(v) for k, v in ped.items()})


def _coordinate(p: Parameter, value: Any) -> float | int:
    """Where ``value`` was sampled: its latent coordinate, or a categorical's index."""
    if p.categorical:
        return list(p.values or ()).index(value)
    return p.to_latent(value)


def _distribution(p: Parameter) -> Any:
    """Optuna's distribution of the coordinate :func:`_coordinate` gives."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if p.categorical:
        return CategoricalDistribution(tuple(range(len(p.values or ()))))
    lo, hi = p.latent_bounds()
    return FloatDistribution(lo, hi)


def draw(ctx: Context, imp: Importance) -> Figure:
    """Horizontal bars: each parameter's importance by each evaluator, the most important on top."""
    order = sorted(imp.fanova, key=lambda k: imp.fanova[k])  # barh draws bottom-up: most important last
    fig = figure.new(7.5, 1.4 + 0.55 * len(order))
    ax = fig.subplots()
    ys = range(len(order))
    ax.barh([y + 0.2 for y in ys], [imp.fanova[k] for k in order], height=0.4, color="tab:blue", label="fANOVA")
    ax.barh(
        [y - 0.2 for y in ys],
        [imp.ped_anova.get(k, 0.0) for k in order],
        height=0.4,
        color="tab:orange",
        label="PED-ANOVA (top 10%)",
    )
    ax.set_yticks(list(ys), [ctx.params[k].axis_label() for k in order])
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance (each evaluator's sum to 1)")
    ax.grid(True, axis="x", alpha=0.25)
    ax.set_title(f"Which parameters matter? {ctx.budget_text(imp.epoch)}, {imp.n} trials", fontsize=10)
    figure.legend_outside(fig, ax)
    return fig


def figures(ctx: Context) -> tuple[Importance, list[Drawn]]:
    """The importances and their figure (none when ``reason`` says why)."""
    imp = importance(ctx)
    if imp.reason:
        return imp, []
    return imp, [Drawn("importance.png", draw(ctx, imp), "parameter importance")]
