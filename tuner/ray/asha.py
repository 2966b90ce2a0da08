"""ASHA over epochs, with its rung records kept across ``tuner resume``.

Ray 2.60 restores an experiment's trials and searcher but not its scheduler
(ray-project/ray#30838), so a resumed ASHA would forget every rung record and judge the rest
of the sweep against nothing. :class:`ResumableASHA` exposes its state as plain data and
:class:`SchedulerState` saves it with every experiment snapshot (and as ``asha-rungs.json`` in
the round's folder, for people and tests to read).

When ASHA judges a trial is :meth:`tuner.spec.SchedulerSpec.milestones`: one formula for the
result batching, the progress and the report; a test checks it against this scheduler.

Both schedulers pick the next trial to run among the live trials (:class:`FlatChoice`) instead
of Ray's pass over every trial of the experiment at every step of its loop, which made the
driver's work grow with the square of the number of trials (half its time at 7,000 trials).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.schedulers.async_hyperband import _Bracket

from tuner.files import write_json
from tuner.records import RUNGS_FILE
from tuner.spec import SchedulerSpec


class FlatChoice:
    """The first pending trial, else the first paused one, in the order of Tune's list of
    trials (Ray's ``FIFOScheduler.choose_trial_to_run``), found among the live trials: Ray's
    own walks every trial of the experiment twice, at every step of Tune's loop. The order is
    the order in which Tune adds trials to its list and tells the scheduler
    (``on_trial_add``): a trial that failed and is retried is moved to the end of the list and
    added again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._place: dict[str, int] = {}
        self._added = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_place": {}}  # Tune pickles the scheduler: a resume adds every trial again

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
        self._place[trial.trial_id] = self._added
        self._added += 1

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        live = tune_controller.get_live_trials()
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [t for t in live if t.status == status]
            if waiting:
                return min(waiting, key=lambda t: self._place.get(t.trial_id, self._added))
        return None


class FlatFIFO(FlatChoice, FIFOScheduler):
    """Ray's FIFO scheduler (trials run to their end), choosing as :class:`FlatChoice` does."""


def scheduler(spec: SchedulerSpec) -> Any:
    """ASHA over epochs (``training_iteration``: one report an epoch), or FIFO for ``none``."""
    if spec.name == "none":
        return FlatFIFO()
    return ResumableASHA(
        time_attr="training_iteration",
        max_t=spec.max_t,
        grace_period=spec.grace_period,
        reduction_factor=spec.reduction_factor,
        brackets=spec.brackets,
    )


class Bracket(_Bracket):
    """Ray's ASHA bracket, with a rung's cutoff that holds diverged trials. A diverged trial is
    recorded at its rung as -inf (the worst value, :func:`tuner.records.worst`), and Ray's
    linear quantile between -inf and a finite value is ``-inf + inf``: numpy warns "invalid
    value encountered" on the driver's console and returns NaN. The limit is -inf, which is
    what this returns, quietly; a trial is stopped exactly when Ray's would be (nothing is
    below NaN or -inf)."""

    def cutoff(self, recorded: dict[str, float]) -> float | None:
        if not recorded:
            return None
        with np.errstate(invalid="ignore"):
            value = float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))
        return -np.inf if np.isnan(value) else value


class ResumableASHA(FlatChoice, ASHAScheduler):
    """Ray's ASHA, plus its state as plain data (see the module docstring), and brackets whose
    cutoff holds diverged trials (:class:`Bracket`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for bracket in self._brackets:  # made by Ray's __init__ as its own _Bracket
            bracket.__class__ = Bracket
        self._restored_brackets: dict[str, int] = {}

    def rungs_state(self) -> dict[str, Any]:
        """``{"brackets": [[{"milestone", "recorded": {trial_id: value}}...]...],
        "trial_bracket": {trial_id: bracket index}}``; values are ASHA's own (the metric
        times +1 for max, -1 for min)."""
        index = {id(b): i for i, b in enumerate(self._brackets)}
        return {
            "brackets": [
                [{"milestone": float(m), "recorded": {k: float(v) for k, v in rec.items()}} for m, rec in b._rungs]
                for b in self._brackets
            ],
            "trial_bracket": {tid: index[id(b)] for tid, b in self._trial_info.items() if id(b) in index},
        }

    def set_rungs_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`rungs_state` returned (the same sweep: same rungs)."""
        for bracket, rungs in zip(self._brackets, state["brackets"]):
            for (milestone, recorded), saved in zip(bracket._rungs, rungs):
                if float(milestone) != float(saved["milestone"]):
                    raise ValueError(f"ASHA rung {milestone} does not match the saved rung {saved['milestone']}")
                recorded.clear()
                recorded.update(saved["recorded"])
        self._restored_brackets = {str(k): int(v) for k, v in state.get("trial_bracket", {}).items()}

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        i = self._restored_brackets.get(trial.trial_id)
        if i is not None and i < len(self._brackets):  # a restored trial stays in its bracket
            self._trial_info[trial.trial_id] = self._brackets[i]


class SchedulerState(tune.Callback):
    """Saves the scheduler's state with every experiment snapshot (Tune checkpoints a
    callback's :meth:`get_state` beside the trials' state and restores it before the trials
    are re-queued) and writes it as ``asha-rungs.json`` into the round's folder. Holds the very
    scheduler object the Tuner uses: both are pickled in one piece into ``tuner.pkl``, so they
    stay one object after a restore."""

    def __init__(self, scheduler: ResumableASHA) -> None:
        self.scheduler = scheduler
        self._folder: str | None = None

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self._folder = trial.storage.experiment_driver_staging_path

    def get_state(self) -> dict[str, Any] | None:
        state = self.scheduler.rungs_state()
        if self._folder:  # the staging folder is synced to the round's folder with this snapshot
            write_json(Path(self._folder) / RUNGS_FILE, state)
        return {"asha": state}

    def set_state(self, state: dict[str, Any]) -> None:
        self.scheduler.set_rungs_state(state["asha"])
