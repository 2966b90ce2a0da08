"""Tune callbacks on the driver: progress, TensorBoard, MLflow and the Optuna journal (how an
experiment ended: :mod:`tuner.ray.outcome`).

Tune pickles its callbacks into the experiment's state (``tuner.pkl``); what belongs to this
driver only (a printer, open files) is left out of the pickle and attached again on resume.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TRAINING_ITERATION

from tuner.journal import Journal
from tuner.progress import INTERRUPTED, TrialEvent
from tuner.records import EPOCH, RAY_KEYS, ROUND_KEY
from tuner.tracking import MlflowTarget

# Reported keys that are not metrics (where and how a trial ran).
_NOT_METRICS = RAY_KEYS | {"node_id", "device", "threads", "diverged", EPOCH}


def metrics_of(result: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of one result (Ray's bookkeeping and ours left out; NaN left out)."""
    return {
        k: v
        for k, v in result.items()
        if k not in _NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }


def step_of(result: dict[str, Any], iteration: int) -> int:
    return int(result.get(EPOCH) or result.get(TRAINING_ITERATION) or iteration)


ENDED = ("TERMINATED", "ERROR")  # Tune's statuses a trial never leaves within an experiment


class ProgressCallback(tune.Callback):
    """Hands the trials' states to ``on_step`` at most every ``every_s`` seconds. A trial that
    has ended no longer changes: its state is taken once (Tune's ``last_result`` is rebuilt at
    each access), so a step costs little more per trial however many have ended."""

    def __init__(self, on_step: Callable[[list[TrialEvent]], None] | None, every_s: float) -> None:
        self.on_step = on_step
        self.every_s = every_s
        self._last = 0.0
        self._ended: dict[str, TrialEvent] = {}
        # Tune's cleanup of an interrupt (Ctrl-C) marks the trials still running or pending
        # TERMINATED without telling the callbacks: the trials started and not told complete or
        # failed since, and those told, tell them from the trials that ended
        self._live: set[str] = set()
        self._told: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # the driver's printer is not part of the experiment (a resumed run attaches its own;
        # Tune starts its unfinished trials again)
        return {**self.__dict__, "on_step": None, "_ended": {}, "_live": set(), "_told": set()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"_live": set(), "_told": set(), **state})  # saved by a tuner before they were kept

    def _emit(self, trials: list[Any], force: bool = False, left: dict[str, str] | None = None) -> None:
        """``left``: trial id -> the status to show instead of Tune's (an interrupt's)."""
        now = time.monotonic()
        if self.on_step is None or (not force and now - self._last < self.every_s):
            return
        self._last = now
        left = left or {}
        events = []
        for t in trials:
            event = None if t.trial_id in left else self._ended.get(t.trial_id)
            if event is None:
                status = left.get(t.trial_id, t.status)
                event = TrialEvent(t.trial_id, status, dict(t.config), dict(t.last_result or {}))
                if status in ENDED:
                    self._ended[t.trial_id] = event
            events.append(event)
        self.on_step(events)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._emit(trials)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.discard(trial.trial_id)
        self._told.add(trial.trial_id)
        self._emit(trials)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._live.discard(trial.trial_id)
        self._told.add(trial.trial_id)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        # TERMINATED, never told so, and not seen ended before (a resumed run's finished trials):
        # left running (interrupted: ``tuner resume`` continues it) or pending by an interrupt
        left = {
            t.trial_id: INTERRUPTED if t.trial_id in self._live else "PENDING"
            for t in trials
            if t.status == "TERMINATED" and t.trial_id not in self._told and t.trial_id not in self._ended
        }
        self._emit(trials, force=True, left=left)


# What tensorboardX imports if it can, for what the driver never does with it: torch (~1.5 s of
# CPU), to accept torch tensors (a result's metrics are numbers); boto3 (~0.3 s, where it is
# installed) and Google Cloud Storage, to write event files to s3:// and gs:// (a trial's
# files are written to its local folder, by :class:`TrialEvents`).
_UNUSED_BY_TENSORBOARDX = ("torch", "boto3", "google.cloud.storage")


@contextlib.contextmanager
def _without(names: Sequence[str]) -> Iterator[None]:
    """While the block runs, each of ``names`` this process has not imported yet counts as
    absent (``import`` raises ImportError), as tensorboardX is imported: seconds of the driver's
    CPU as a run starts, on the cores its first trials start on, before Tune asks for them. They
    import as usual afterwards."""
    absent = [name for name in names if name not in sys.modules]
    for name in absent:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in absent:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


class TrialEvents:
    """One trial's TensorBoard event file, written in the calling thread. tensorboardX's
    ``SummaryWriter`` gives every writer a queue (a pipe and its feeder thread) and a writer
    thread of its own: ~5 ms of the driver's CPU a trial to start and stop them, a sixth of the
    driver's whole cost a trial in a sweep of short trials (BENCHMARKS.md k), for a few
    scalars an epoch; and its record writer ``fsync``s the file at every flush, which held the
    driver a tenth of its time at 5,000 trials. TensorBoard's files are not records a run
    depends on (``result.json`` is): they are flushed, never synced. It is the logger's writer
    class (:attr:`EpochTensorBoard.WRITER`), made as Tune makes one, and has what Tune's
    TensorBoard logger uses of a writer: ``add_scalar``, ``file_writer.add_summary`` (the
    trial's hparams at its end), ``flush`` and ``close``."""

    def __init__(self, logdir: str, flush_secs: float = 0.0) -> None:  # flush_secs: Tune's; unused
        from tensorboardX.proto.event_pb2 import Event

        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{str(time.time())[:10]}.{socket.gethostname()}"  # as tensorboardX names it
        self._file = open(os.path.join(logdir, name), "wb")  # closed by close(), as Tune calls it
        self.file_writer = self
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        """One record of the file: TFRecord framing (length, its CRC, the event, its CRC)."""
        from tensorboardX.record_writer import masked_crc32c

        data = event.SerializeToString()
        header = struct.pack("Q", len(data))
        self._file.write(
            header + struct.pack("I", masked_crc32c(header)) + data + struct.pack("I", masked_crc32c(data))
        )

    def add_summary(self, summary: Any, global_step: int | None = None) -> None:
        from tensorboardX.proto.event_pb2 import Event

        event = Event(summary=summary, wall_time=time.time())
        if global_step is not None:
            event.step = int(global_step)
        self._write(event)

    def add_scalar(self, tag: str, value: float, global_step: int | None = None) -> None:
        from tensorboardX.summary import scalar

        self.add_summary(scalar(tag, value), global_step)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class EpochTensorBoard(TBXLoggerCallback):  # type: ignore[misc]
    """Ray Tune's TensorBoard logger, lean: a trial's own metrics under ``ray/tune/`` with the
    epoch as step, written to the trial's folder. Ray's writes every number of a result (Tune's
    bookkeeping too: ~20 scalars) and flushes the file after each, ~5 ms of the driver's CPU a
    result, on the cores the trials train on; this one writes the trial's metrics and flushes
    at most every :attr:`FLUSH_S` per trial, and at the trial's end, through a
    :class:`TrialEvents` a trial (no thread a trial)."""

    FLUSH_S = 2.0
    WRITER: Any = TrialEvents  # a trial's writer, in place of Ray's tensorboardX SummaryWriter

    def __init__(self) -> None:
        with _without(_UNUSED_BY_TENSORBOARDX):
            super().__init__()
        self._summary_writer_cls = self.WRITER
        self._flushed: dict[Any, float] = {}

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks: open writers stay behind
        return {**self.__dict__, "_trial_writer": {}, "_trial_result": {}, "_flushed": {}}

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        step = step_of(result, iteration)
        writer = self._trial_writer[trial]
        logged = {}
        for key, value in metrics_of(result).items():
            logged[f"ray/tune/{key}"] = value
            writer.add_scalar(f"ray/tune/{key}", value, global_step=step)
        self._trial_result[trial] = logged  # the trial's hparams entry at its end
        now = time.monotonic()
        if now - self._flushed.get(trial, 0.0) >= self.FLUSH_S:
            writer.flush()
            self._flushed[trial] = now

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        self._flushed.pop(trial, None)
        super().log_trial_end(trial, failed)  # closes (and so flushes) the trial's writer


def mlflow_callback(target: MlflowTarget) -> Any:
    """Ray Tune's MLflow callback for ``target``: on the driver, one MLflow run per trial
    with the searched parameters as params and its metrics per epoch (step = epoch)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class _EpochMetrics(MLflowLoggerCallback):  # type: ignore[misc]
        # The searched values are the run's params, its round a tag (the searcher's, not a value).
        def log_trial_start(self, trial: Any) -> None:
            if trial not in self._trial_runs:
                tags = {**self.tags, "trial_name": str(trial), "tuner.round": str(trial.config.get(ROUND_KEY, 0))}
                self._trial_runs[trial] = self.mlflow_util.start_run(tags=tags, run_name=str(trial)).info.run_id
            params = {k: v for k, v in trial.config.items() if k != ROUND_KEY}
            self.mlflow_util.log_params(run_id=self._trial_runs[trial], params_to_log=params)

        # Ray's callback logs every key of a result (its own bookkeeping too), one call each;
        # ours are the metrics a trial reports, which keeps a long sweep's driver quick.
        def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
            metrics: dict[str, Any] = metrics_of(result)
            if isinstance(result.get("diverged"), bool):
                metrics["diverged"] = result["diverged"]
            self.mlflow_util.log_metrics(
                run_id=self._trial_runs[trial], metrics_to_log=metrics, step=step_of(result, iteration)
            )

    return _EpochMetrics(tracking_uri=target.uri, experiment_name=target.experiment, tags=dict(target.tags))


class JournalCallback(tune.Callback):
    """Writes the experiment's trials to an Optuna journal as they report, for optuna-dashboard
    (the mapping: :mod:`tuner.journal`). Epochs reach the file in batches, about once a second.
    Pickled with the experiment without its open file; :meth:`reattach` points a restored one at
    the run directory as it is now."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def reattach(self, fresh: Sequence[Any]) -> None:
        """Take the journal of the first :class:`JournalCallback` among ``fresh`` (a resumed run's)."""
        for cb in fresh:
            if isinstance(cb, JournalCallback):
                self.journal = cb.journal
                return

    def setup(self, **info: Any) -> None:
        self.journal.prepare()

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.journal.started(trial.trial_id, trial.config or {})

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.journal.reported(trial.trial_id, trial.config or {}, result)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.journal.ended(trial.trial_id, trial.config or {}, trial.last_result or {})

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.journal.ended(trial.trial_id, trial.config or {}, trial.last_result or {}, error=True)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self.journal.flush(force=False)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.journal.flush()
