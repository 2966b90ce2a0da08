"""How an experiment ended: with trials left unfinished (Ctrl-C), or stopped because its first
trials all failed alike. Both are Tune callbacks on the driver, pickled with the experiment's
state and found again on resume (:func:`tuner.ray.experiment.resume_experiment`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.stopper import Stopper

from tuner.errors import without_ids
from tuner.ray import logs
from tuner.ray.worker import without_node
from tuner.results import trial_error


class Outcome(tune.Callback):
    """Whether the experiment ended with trials left unfinished. Tune's handler of the first
    Ctrl-C saves the experiment and returns from ``fit()`` as if it had finished; its cleanup
    then marks the running trials TERMINATED without telling the callbacks, so the trials that
    started and never completed are counted as they go (never a pass over all trials a step:
    the driver's cost per trial stays flat), with those still pending at the end."""

    def __init__(self) -> None:
        self.unfinished = 0
        self._live: set[str] = set()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.add(trial.trial_id)
        logs.trial_started(trial.trial_id, getattr(trial, "local_path", None))  # a hung trial's line

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.discard(trial.trial_id)
        logs.trial_ended(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.discard(trial.trial_id)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.unfinished = len(self._live) + sum(1 for t in trials if t.status == "PENDING")


class FirstFailures(tune.Callback, Stopper):  # type: ignore[misc]
    """Stops the experiment when its first ``limit`` trials to end all failed with the same
    error before any trial reported a result or finished: a function or model that cannot be
    imported, a data file it cannot read, a network that does not build. Every trial would
    fail the same way, one after another, each in a fresh worker process (32 trials of a
    function with a broken import took 115 s). Given to Tune as the callback and as the
    experiment's stopper (``stop_all``); the run then fails with that error as it would have
    at the end. A sweep where only some configurations fail (a batch too large for memory)
    goes on: another trial reports first, or the errors differ.

    The error compared is the trial's one-line summary (:func:`tuner.results.error_line`)
    without the node it ran on and the ids it names (:func:`tuner.errors.without_ids`)."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.errors: list[str] = []
        self.armed = True  # until a trial reports, finishes, or the first errors differ
        self.tripped = False

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.armed = False

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.armed = False

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if not self.armed:
            return
        kind = _error_kind(trial)
        if kind is None or (self.errors and kind != self.errors[0]):
            self.armed = False
            return
        self.errors.append(kind)
        if len(self.errors) >= self.limit:
            self.tripped, self.armed = True, False

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False  # no single trial is stopped here

    def stop_all(self) -> bool:
        return self.tripped


def _error_kind(trial: Any) -> str | None:
    """A failed trial's error in one line, without the node it ran on (None: none to read)."""
    if not trial.error_file:
        return None
    try:
        line = trial_error(Path(trial.error_file))
    except OSError:
        return None
    return without_ids(without_node(line)) if line else None
