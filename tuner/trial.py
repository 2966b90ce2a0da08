"""What a trial's function gets: :class:`Run`, the one trial protocol.

A sweep names a function ``fit(config: dict, run: tuner.Run) -> None`` (the built-in BN
trainer, :func:`tuner.models.train.fit`, is one such function). It calls
``run.report(metrics, state=None)`` once an epoch -- the ASHA time unit -- and may call
``run.restore()`` first to continue from its last saved state after a restart. ``state`` is a
dict or a zero-argument callable returning one; it is saved as a checkpoint only when
:class:`CheckpointPolicy` says one is due (the first report, then once the training since
the last is ``CHECKPOINT_RATIO`` times what that checkpoint cost), so passing it costs
nothing otherwise.

Every report is checked: the sweep's metric must be in the first one (else the trial fails
with a message naming the metric and the keys it did report), values must be numbers, and a
non-finite value of any metric marks the trial diverged: it is recorded with the worst value
of each metric and stopped, and the sweep goes on. A trial's budget is ``max_t`` reports
(the sweep's ``scheduler.max_t``): a report beyond it ends the function there, unrecorded,
as ASHA ends a trial at ``max_t`` (code after a loop of exactly ``max_t`` epochs still runs).

The trial ends by an exception raised out of :meth:`Run.report` (:class:`StopTrial`, a
``BaseException``, so that a function's own ``except Exception`` cannot swallow it); whoever
runs the function catches it.

Where a trial runs decides how a report travels: :class:`tuner.ray.worker.RayRun` on Ray,
:class:`LocalRun` in this process (``tuner try``), :class:`TaskRun` for a retest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from tuner.errors import first_line, printable
from tuner.records import (
    BOOKKEEPING,
    BUILTIN_METRICS,
    DEVICE,
    DIVERGED,
    EPOCH,
    EPOCH_S,
    NODE_ID,
    RAY_KEYS,
    RESERVED,
    THREADS,
    worst,
)

CHECKPOINT_RATIO = 25.0
State = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
MAX_METRICS = 200  # keys of one report; more is a mistake (a whole tensor passed in, say)


class StopTrial(BaseException):
    """Raised out of :meth:`Run.report` to end the trial's function (caught by whoever runs
    it; never the user's to handle). A ``BaseException``: a function's ``except Exception``
    around its training does not swallow it."""


class TrialDiverged(StopTrial):
    """A metric turned non-finite: the trial is recorded as diverged and stops there."""


class BudgetSpent(StopTrial):
    """The function reported beyond its budget (``max_t`` reports): the trial ends there."""


class ReportError(ValueError):
    """A report the sweep cannot use: the metric missing, a value that is not a number."""


class CheckpointPolicy:
    """When a trial checkpoints: at its first report, then once the seconds since its last
    checkpoint reach ``ratio`` × what that checkpoint cost (wall seconds, save and report);
    or, when ``every_s`` is given, every ``every_s`` seconds (0: every epoch).

    A checkpoint costs the trial a ``torch.save`` and Ray's copy into the trial folder while it
    waits, and the driver the bookkeeping of it: tens of ms, a third of a short epoch when taken
    every epoch. At ``CHECKPOINT_RATIO`` = 25 they cost at most 4% of a trial's time, and a
    restored trial redoes at most 25 checkpoints' worth of training. The first report always
    checkpoints: a trial checkpoint makes Ray Tune save the experiment's state, so every started
    trial is in that state at once, as ``tuner resume`` needs after a driver crash.
    """

    def __init__(self, every_s: float | None = None, ratio: float = CHECKPOINT_RATIO, now: float | None = None) -> None:
        self.every_s, self.ratio = every_s, ratio
        self.cost_s: float | None = None  # of the last checkpoint; None before the first
        self.since = time.monotonic() if now is None else now

    def due(self, now: float | None = None) -> bool:
        """Whether the report about to be made should carry a checkpoint."""
        if self.every_s is None and self.cost_s is None:
            return True
        interval = self.every_s if self.every_s is not None else self.ratio * (self.cost_s or 0.0)
        return (time.monotonic() if now is None else now) - self.since >= interval

    def taken(self, started: float, now: float | None = None) -> None:
        """A checkpoint begun at ``started`` (monotonic seconds) is done."""
        self.since = time.monotonic() if now is None else now
        self.cost_s = max(self.since - started, 0.0)


class Run:
    """The trial protocol a function sees (see the module docstring).

    Attributes:
        seed: the trial's seed (the sweep's for a search; fresh ones in a retest).
        device: the GPU Ray assigned this trial (``cuda``), else the CPU.
        cpus: the CPUs reserved for the trial (torch uses that many threads).
        data: the sweep's data set, read-only, shared by every trial (``None`` when the sweep
            names none); a search's copy holds no test split.
        trial_id: the trial's id.
    """

    def __init__(
        self,
        *,
        metric: str,
        mode: str,
        seed: int = 0,
        device: torch.device | None = None,
        cpus: int = 1,
        data: Any = None,
        trial_id: str = "",
        node_id: str = "",
        checkpoint_every_s: float | None = None,
        max_t: int | None = None,
    ) -> None:
        self.metric, self.mode = metric, mode
        self.max_t = max_t
        self.seed = int(seed)
        self._device = device
        self.cpus = max(1, int(cpus))
        self.data = data
        self.trial_id = trial_id
        self.epoch = 0  # reports made (continued from a restored checkpoint)
        self.reports: list[dict[str, Any]] = []  # what this process reported
        self._where = {NODE_ID: node_id, DEVICE: "cpu" if device is None else device.type, THREADS: self.cpus}
        self._policy = CheckpointPolicy(checkpoint_every_s)
        self._last = time.perf_counter()
        self.last_report = time.monotonic()  # when the function last reported (or the run was made)
        self._restored: Any = None
        self._loaded = False
        self._stopped: StopTrial | None = None  # the trial ended: every later report ends it again

    @property
    def device(self) -> torch.device:
        """The GPU Ray assigned the trial (``cuda``), else the CPU. torch is imported when this
        is first asked (``device=None`` means the CPU): neither the driver nor a function that
        does not use torch pays for the import."""
        if self._device is None:
            import torch

            self._device = torch.device("cpu")
        return self._device

    # -- the protocol ---------------------------------------------------------------------------

    def report(self, metrics: Mapping[str, Any], state: State | None = None) -> None:
        """Report one epoch's metrics; ``state`` (a dict or a zero-argument callable returning
        one) is saved as a checkpoint when one is due.

        Raises:
            ReportError: the sweep's metric is missing from the first report, or a value is
                not a number, or the state cannot be saved.
            TrialDiverged: a metric is non-finite (the trial is recorded as diverged and ends).
            BudgetSpent: ``max_t`` reports were made already (this one is not recorded).
        """
        now = time.perf_counter()
        self.last_report = time.monotonic()
        if self._stopped is not None:  # a function that caught tuner's stop (a bare except:) is stopped again
            raise type(self._stopped)(str(self._stopped))
        if self.max_t is not None and self.epoch >= self.max_t:
            raise BudgetSpent(f"the trial's budget of {self.max_t} reports is spent")
        result = self._check(metrics)
        self.epoch += 1
        result.update({EPOCH: self.epoch, EPOCH_S: now - self._last, **self._where})
        diverged = any(isinstance(v, float) and not math.isfinite(v) for k, v in result.items() if k not in BOOKKEEPING)
        if diverged:
            result = {**{k: self._worst(k, v) for k, v in result.items()}, DIVERGED: True}
            result.setdefault(self.metric, self._worst(self.metric, math.nan))
            self.reports.append(result)
            self._send(result, None)
            self._stopped = TrialDiverged(f"{self.metric} turned non-finite at epoch {self.epoch}")
            raise self._stopped
        self._require_metric(result)
        result[DIVERGED] = False
        self.reports.append(result)
        if state is not None and self._policy.due():
            started = time.monotonic()
            self._send(result, {"epoch": self.epoch, "state": state() if callable(state) else state})
            self._policy.taken(started)
        else:
            self._send(result, None)
        self._last = time.perf_counter()

    def restore(self) -> Any | None:
        """The state saved with the last checkpoint, or None (a fresh trial). Its tensors are
        on the CPU: ``load_state_dict`` moves them to the parameters' device."""
        self._load()
        return self._restored

    # -- what a place to run provides -----------------------------------------------------------

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        """Deliver one report (with the checkpoint to save, when one is due)."""
        raise NotImplementedError(
            "run.report: this tuner.Run belongs to no trial (one made with tuner.Run(...) reports nowhere); "
            "report through the run your function is given: def fit(config, run): ... run.report(...)"
        )

    def _checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint saved for this trial ({"epoch", "state"}), or None."""
        return None

    # -- shared ---------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            saved = self._checkpoint()
            if saved is not None:
                self.epoch = int(saved.get("epoch", 0))
                self._restored = saved.get("state")

    def _check(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The report's keys and values checked (the metric's presence is checked after
        divergence: a diverged epoch may have nothing else to say)."""
        if not isinstance(metrics, Mapping):
            raise ReportError(f"run.report: metrics must be a dict of numbers, not {type(metrics).__name__}")
        if len(metrics) > MAX_METRICS:
            raise ReportError(f"run.report: {len(metrics)} metrics in one report (at most {MAX_METRICS})")
        out: dict[str, Any] = {}
        for key, value in metrics.items():
            if not isinstance(key, str) or not key or len(key) > 100:
                raise ReportError(
                    f"run.report: {str(key)[:100]!r} cannot be a metric name (a string of 1-100 characters)"
                )
            if key in RESERVED or key in RAY_KEYS or key.startswith("__"):
                raise ReportError(
                    f"run.report: {key!r} cannot be a metric name: tuner or Ray sets it (leave out "
                    f"{', '.join(RESERVED)}, Ray's {', '.join(sorted(k for k in RAY_KEYS if k[0] != '_'))} and "
                    "names that start with __; the epoch is counted for you)"
                )
            out[key] = _number(key, value)
        return out

    def _require_metric(self, result: Mapping[str, Any]) -> None:
        if self.metric in result:
            return
        if not self.reports:
            keys = ", ".join(sorted(k for k in result if k not in RESERVED)[:20]) or "none"
            raise ReportError(
                f"run.report: the sweep's metric {self.metric!r} is not in the first report "
                f"(it reported: {keys}); report it every epoch or set the sweep's metric to one "
                "of those"
            )
        raise ReportError(f"run.report: the sweep's metric {self.metric!r} is missing at epoch {self.epoch}")

    def _worst(self, key: str, value: Any) -> Any:
        """A diverged report's value of ``key``: the worst possible for the sweep's metric and
        for any non-finite value (in the direction the metric is better), else as reported."""
        if key in BOOKKEEPING or not isinstance(value, (int, float)):
            return value
        if key == self.metric:
            return worst(self.mode, key)
        if isinstance(value, float) and not math.isfinite(value):
            return worst(BUILTIN_METRICS.get(key, "min"), key)
        return value


def _number(key: str, value: Any) -> int | float:
    """A reported value as a Python number: an int, a float, or a numpy or torch value of one
    real number (an integer or floating dtype; never a bool, a complex number, a string or a
    date). An int past the float range is infinite (a metric of 10**400 diverged: Ray's ASHA
    could not compare it).

    Raises:
        ReportError: anything else, naming ``key`` and what it is.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number: Any = value
    else:
        dtype = getattr(value, "dtype", None)
        kind = getattr(dtype, "kind", None)  # numpy's: i, u, f; b, c, U, O, M...
        if kind is None and hasattr(dtype, "is_complex"):  # torch's
            kind = (
                "c"
                if dtype.is_complex
                else "f"
                if dtype.is_floating_point
                else "b"
                if str(dtype) == "torch.bool"
                else "i"
            )
        try:
            one = getattr(value, "ndim", None) == 0 or (hasattr(value, "numel") and value.numel() == 1)
            number = value.item() if kind in ("i", "u", "f") and one else None
        except Exception:
            number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            what = type(value).__name__ + (f" of {dtype}" if dtype is not None else "")
            raise ReportError(f"run.report: {key!r} must be a number, not {what[:80]}")
    if isinstance(number, int):
        try:
            float(number)
        except OverflowError:
            return math.inf if number > 0 else -math.inf
    return number


def saved_state(checkpoint: dict[str, Any]) -> bytes:
    """``checkpoint`` as ``torch.save`` writes it: what a trial's checkpoint file holds.

    Raises:
        ReportError: what the function handed in as its state cannot be pickled.
    """
    import io

    import torch

    buffer = io.BytesIO()
    try:
        torch.save(checkpoint, buffer)
    except Exception as e:
        raise ReportError(
            f"run.report: the state cannot be saved ({type(e).__name__}: {first_line(e)}); hand in a dict of "
            "tensors, numbers and containers of them (state_dict()s)"
        ) from e
    return buffer.getvalue()


class LocalRun(Run):
    """A trial in this process without Ray (``tuner try``): reports go to ``write`` as they
    come; checkpoints are kept in memory."""

    def __init__(self, *, write: Callable[[str], None] = print, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write = write
        self.saved: dict[str, Any] | None = None

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        if checkpoint is not None:  # saved as a trial saves it, and restored as a restarted trial gets it
            import io

            import torch

            self.saved = torch.load(io.BytesIO(saved_state(checkpoint)), map_location="cpu", weights_only=False)
        shown = {k: v for k, v in result.items() if k not in (EPOCH, NODE_ID, THREADS, DEVICE, DIVERGED)}
        text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
        self.write(printable(f"epoch {self.epoch}: {text}" + ("  (diverged)" if result.get(DIVERGED) else "")))

    def _checkpoint(self) -> dict[str, Any] | None:
        return self.saved


class TaskRun(Run):
    """A trial run as a plain task (a retest's seed): reports are kept, nothing is saved."""

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        pass


def call(function: Callable[..., Any], config: dict[str, Any], run: Run) -> None:
    """Run ``function(config, run)``; a :class:`StopTrial` (divergence, the budget spent)
    ends it quietly: what it means is in the reports."""
    try:
        function(config, run)
    except StopTrial:
        pass


class TrialError(RuntimeError):
    """A trial's function failed: its error in one line, naming the user's own frame (the
    original error and its whole traceback are chained to it, for the logs)."""
