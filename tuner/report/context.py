"""What every section of the report reads: the run, its searched parameters, its best trial
and its scores at a common budget.

A trial's *last* score mixes budgets: a trial ASHA stopped at epoch 2 sits below a 20-epoch
trial whatever its parameters. The report compares trials at a common budget instead: the
epochs at which ASHA judges trials (its rung milestones, from
:meth:`tuner.spec.SchedulerSpec.milestones`) and the full budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from tuner.errors import InputError
from tuner.records import RUN_FILE, Export, TrialRecord, TrialStatus, worst
from tuner.results import RunDir
from tuner.space import ONE_MINUS_LOG, Parameter

# Fewest trials at one budget for the figures that compare trials there (importance, the map):
# below it a budget with more trials is taken, and importance says it has too few.
MIN_TRIALS = 8
# The last part of a searched path that names a learning rate (the x of the lr × (1 − β) map).
LR_NAMES = ("lr", "learning_rate")


@dataclass(frozen=True)
class Score:
    """One trial's score at a budget: ``value`` is the metric there, or the worst value
    (±inf, or 0 for an accuracy) when the trial diverged at or before that epoch."""

    trial: TrialRecord
    value: float
    diverged: bool


@dataclass
class Context:
    """The run as the report's sections see it."""

    run: RunDir
    export: Export | None
    out: Path
    rounds: list[tuple[int, dict[str, Parameter]]] = field(default_factory=list)

    @classmethod
    def of(cls, run: RunDir, export: Export | None, out: Path) -> Context:
        """The context of ``run``; raises InputError on a round whose parameters are malformed."""
        return cls(run, export, out, round_parameters(run))

    @property
    def metric(self) -> str:
        return self.run.metric

    @property
    def mode(self) -> str:
        return self.run.mode

    @property
    def params(self) -> dict[str, Parameter]:
        """The searched parameters as the first round defines them (the widest ranges)."""
        return dict(self.rounds[0][1]) if self.rounds else {}

    @cached_property
    def best(self) -> TrialRecord | None:
        """The run's best trial (the one the export picks: the best finite last score); None
        when no trial has a finite score (every one diverged, or none reported yet)."""
        return next((t for t in self.run.ranked() if math.isfinite(t.score(self.metric) or math.nan)), None)

    @cached_property
    def budgets(self) -> list[int]:
        """The epochs at which trials are compared: ASHA's rung milestones below the full
        budget, and the full budget; empty for a function that states no budget."""
        max_t = self.run.sweep.max_t
        if not max_t:
            return []
        return [m for m in self.run.sweep.scheduler.milestones() if m < max_t] + [int(max_t)]

    def scores_at(self, epoch: int | None) -> list[Score]:
        """Every trial's score at ``epoch`` (None: its last report), a trial that diverged
        at or before it counted at the worst value, one that did not reach it left out."""
        bad = worst(self.mode, self.metric)
        out = []
        for t in self.run.trials:
            if t.status is TrialStatus.DIVERGED and (epoch is None or t.epochs <= epoch):
                out.append(Score(t, bad, True))
                continue
            v = t.score_at(self.metric, epoch)
            if v is not None and math.isfinite(v):
                out.append(Score(t, v, False))
        return out

    @cached_property
    def budget(self) -> int | None:
        """The common budget of the figures that compare trials at one epoch (importance, the
        map, parallel coordinates): the highest budget that a quarter of the trials reached and
        at least :data:`MIN_TRIALS` (or as many as any budget has): ASHA's later rungs judge on
        more epochs but hold fewer trials, and only the better ones. None (the last report) for
        a function that states no budget."""
        counts = {b: len(self.scores_at(b)) for b in self.budgets}
        if not counts or not max(counts.values()):
            return None
        most = max(counts.values())
        enough = min(max(MIN_TRIALS, math.ceil(most / 4)), most)
        return max(b for b, n in counts.items() if n >= enough)

    def budget_text(self, epoch: int | None) -> str:
        """How a figure names a budget: ``val_acc at epoch 6`` or ``val_acc (last report)``."""
        return f"{self.metric} at epoch {epoch}" if epoch is not None else f"{self.metric} (last report)"

    def lr_and_beta(self) -> tuple[Parameter, Parameter] | None:
        """The searched learning rate and momentum-like β (a ``one_minus_log_uniform``
        parameter) when both were searched, for the lr × (1 − β) map."""
        lr = next((p for path, p in self.params.items() if path.rsplit(".", 1)[-1] in LR_NAMES), None)
        beta = next((p for p in self.params.values() if not p.categorical and p.scale is ONE_MINUS_LOG), None)
        return (lr, beta) if lr is not None and beta is not None and not lr.categorical else None


def round_parameters(run: RunDir) -> list[tuple[int, dict[str, Parameter]]]:
    """Each round's index and searched parameters (``run.json``'s ``rounds[*].parameters``;
    the sweep's own for a round that does not record them).

    Raises:
        InputError: a round's parameters are malformed (naming the round and the rule).
    """
    sweep_params = {p.path: p.to_dict() for p in run.sweep.search.parameters}
    out = []
    for i, r in enumerate(run.meta.rounds):
        specs = r.parameters or sweep_params
        try:
            out.append((r.index, {p: Parameter.from_dict(p, s) for p, s in specs.items()}))
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            why = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise InputError(f"{run.path / RUN_FILE}: rounds[{i}].parameters: {why}") from None
    if not out and sweep_params:
        out.append((0, {p: Parameter.from_dict(p, s) for p, s in sweep_params.items()}))
    return out
