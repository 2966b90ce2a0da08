"""A run's trials as an Optuna journal (``RUN_DIR/optuna.journal``), so that optuna-dashboard
shows a run while it goes on::

    pip install 'tuner[dashboard]'
    optuna-dashboard runs/quickstart/optuna.journal        # then open http://127.0.0.1:8080/

The run is one Optuna study, named after its directory, its direction the sweep's mode; refine
rounds add their trials to the same study. Each trial of the run is an Optuna trial:

- **params** on their distributions, with the sweep file's bounds (a refine round draws inside
  them): ``uniform`` and ``one_minus_log_uniform`` a ``FloatDistribution`` (β itself, on a
  linear axis: Optuna has no 1 − β scale), ``log_uniform`` one with ``log=True``,
  ``int_uniform``/``int_log_uniform`` an ``IntDistribution``, ``values`` a
  ``CategoricalDistribution``. Optuna's choices must be None, bool, int, float or str, so a
  value that is none of them -- a list of widths like ``[64, 64]`` -- is its JSON text
  ``"[64, 64]"`` (``json.loads`` gives the value back).
- **intermediate values**: the sweep's metric at each epoch (step = epoch). A diverged epoch's
  report holds a stand-in (the worst value), not a measurement, and is left out.
- **state**: a trial that ran its budget is ``COMPLETE`` with its last value; one ASHA stopped is
  ``PRUNED`` (with its last value, as Optuna records a pruned trial); a diverged or failed one is
  ``FAIL``; one still going is ``RUNNING``.
- **user attrs**: ``round`` (0, then 1.. for refine rounds), ``ray_trial_id`` (the trial's id in
  ``result.json`` and :func:`tuner.load_run`) and, once it ended, ``status`` (tuner's: finished,
  stopped, diverged, error) and ``epochs``.

The journal is written from the driver (:class:`tuner.ray.callbacks.JournalCallback`) and is a
view: a write that fails is logged once and the journal stops; the sweep goes on. Epochs are
written in batches, one file append a second, rather than one ``fsync`` an epoch (~3 ms each).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tuner.progress import classify
from tuner.records import DIVERGED, EPOCH, ROUND_KEY
from tuner.space import Parameter

logger = logging.getLogger(__name__)

# Epochs reach the file at most this long after they were reported.
FLUSH_S = 1.0
PRIMITIVE = (type(None), bool, int, float, str)


def choice(value: Any) -> Any:
    """A categorical value as an Optuna choice: itself when Optuna takes it, else its JSON text."""
    if isinstance(value, PRIMITIVE):
        return value
    return json.dumps(value, sort_keys=True)


def distribution(param: Parameter) -> Any:
    """The Optuna distribution of ``param`` (see the module docstring)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if param.values is not None:
        return CategoricalDistribution([choice(v) for v in param.values])
    low, high = float(param.low), float(param.high)  # type: ignore[arg-type]
    if param.is_int:
        return IntDistribution(int(low), int(high), log=param.distribution == "int_log_uniform")
    return FloatDistribution(low, high, log=param.distribution == "log_uniform")


def trial_params(params: Sequence[Parameter], config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's ``config`` as Optuna params and their distributions. A value outside the
    bounds (a rounding edge) widens its distribution to it; a categorical value that is not
    among the choices, or a parameter the config lacks, is left out."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    values: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    for p in params:
        if p.path not in config:
            continue
        d, v = distribution(p), config[p.path]
        if isinstance(d, CategoricalDistribution):
            v = choice(v)
            if v not in d.choices:
                continue
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        elif isinstance(d, IntDistribution):
            if float(v) != int(v):
                continue
            v = int(v)
            if not d.low <= v <= d.high:
                d = IntDistribution(min(d.low, v), max(d.high, v), log=d.log) if not d.log or v >= 1 else None
        else:
            v = float(v)
            if not d.low <= v <= d.high:
                d = FloatDistribution(min(d.low, v), max(d.high, v), log=d.log) if not d.log or v > 0 else None
        if d is not None:
            values[p.path], dists[p.path] = v, d
    return values, dists


def end_state(status: str, values: Mapping[int, float]) -> tuple[str, float | None]:
    """The Optuna state (COMPLETE | PRUNED | FAIL) and value of a trial that ended with tuner's
    ``status`` (finished | stopped | diverged | error) and intermediate ``values``."""
    last = values[max(values)] if values else None
    if status == "finished" and last is not None:
        return "COMPLETE", last
    if status in ("finished", "stopped"):  # finished without a value: nothing to rank it by
        return "PRUNED", last
    return "FAIL", None


def metric_value(result: Mapping[str, Any], metric: str) -> float | None:
    """The sweep's metric in one report, when it is a measurement (finite, not diverged)."""
    v = result.get(metric)
    if result.get(DIVERGED) or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def epoch_of(result: Mapping[str, Any]) -> int | None:
    v = result.get(EPOCH) or result.get("training_iteration")
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v >= 1 else None


@dataclass
class _Trial:
    """What the journal knows of one trial, and how much of it is written."""

    key: str  # Ray Tune's trial id
    round: int
    config: dict[str, Any]
    started: dt.datetime
    values: dict[int, float] = field(default_factory=dict)
    status: str | None = None  # tuner's, once ended
    epochs: int = 0
    number: int | None = None  # Optuna's trial id in the storage, once written
    written: dict[int, float] = field(default_factory=dict)  # the values in the file (a restored epoch may change)
    closed: bool = False  # its end is written


class Journal:
    """Writes a run's trials to an Optuna journal file (see the module docstring).

    Args:
        path: the journal file (``RUN_DIR/optuna.journal``).
        study: the study's name (the run's).
        metric, mode: the sweep's.
        params: the sweep file's parameters (their bounds are the distributions').
        max_t: a trial's full budget (None: none stated).
    """

    def __init__(
        self, path: str | Path, study: str, metric: str, mode: str, params: Sequence[Parameter], max_t: int | None
    ) -> None:
        self.path, self.study, self.metric, self.mode = str(path), study, metric, mode
        self.params, self.max_t = list(params), max_t
        self.broken = False
        self._reset()

    def _reset(self) -> None:
        self._storage: Any = None
        self._backend: Any = None
        self._study_id = -1
        self._trials: dict[str, _Trial] = {}
        self._dirty: set[str] = set()
        self._flushed = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks: the open storage and what it knows stay behind (the file holds it)
        state = dict(self.__dict__)
        for key in ("_storage", "_backend", "_trials", "_dirty"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.broken = False  # a resumed run tries its journal afresh
        self._reset()

    # -- what happens to trials ----------------------------------------------------------------

    def started(self, key: str, config: Mapping[str, Any]) -> None:
        """Trial ``key`` started (or started again: a failed trial retried gets a new Optuna trial)."""
        t = self._trial(key, config)
        if t.closed:
            self._trials[key] = _Trial(key, t.round, dict(config) or t.config, _now())
        self._dirty.add(key)

    def reported(self, key: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Trial ``key`` reported ``result`` (one epoch)."""
        t = self._trial(key, config)
        if t.closed:
            self.started(key, config)
            t = self._trials[key]
        epoch, value = epoch_of(result), metric_value(result, self.metric)
        if epoch is not None:
            t.epochs = max(t.epochs, epoch)
            if value is not None:
                t.values[epoch] = value
        self._dirty.add(key)

    def ended(self, key: str, config: Mapping[str, Any], last: Mapping[str, Any], error: bool = False) -> None:
        """Trial ``key`` ended (``last``: its last result; ``error``: it failed)."""
        t = self._trial(key, config)
        if t.closed:
            return
        t.status = classify("ERROR" if error else "TERMINATED", dict(last), self.max_t)
        if t.status == "finished" and not t.epochs and epoch_of(last) is None:
            t.status = "stopped"  # as the run's records tell it: no report, no budget run
        self._dirty.add(key)

    def prepare(self) -> None:
        """Open the journal now (a run's start), so that a resumed run's trials are known
        before its first event; a journal that cannot be opened is logged and left alone."""
        self._guarded(self.open)

    def flush(self, force: bool = True) -> None:
        """Write what changed (``force=False``: only when the last write is :data:`FLUSH_S` old)."""
        now = time.monotonic()
        if self.broken or not self._dirty or (not force and now - self._flushed < FLUSH_S):
            return
        self._flushed = now
        self._guarded(self._write)

    def _guarded(self, step: Any) -> None:
        if self.broken:
            return
        try:
            step()
        except Exception as e:  # a view of the run: never what stops it
            self.broken = True
            logger.warning("the Optuna journal %s is not written any more: %s: %s", self.path, type(e).__name__, e)

    # -- writing -------------------------------------------------------------------------------

    def _trial(self, key: str, config: Mapping[str, Any]) -> _Trial:
        t = self._trials.get(key)
        if t is None:
            r = config.get(ROUND_KEY, 0)
            r = r if isinstance(r, int) and not isinstance(r, bool) else 0
            t = self._trials[key] = _Trial(key, r, dict(config), _now())
        return t

    def open(self) -> None:
        """Open the journal (created if missing) and read back the trials written before (a
        resumed run goes on with them)."""
        import optuna
        from optuna.storages import JournalStorage
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        self._backend = _batched_backend(self.path)
        self._backend.repair()  # before Optuna reads it: a line a crash cut short would be appended onto
        self._storage = JournalStorage(self._backend)
        try:
            self._study_id = self._storage.get_study_id_from_name(self.study)
        except KeyError:
            direction = StudyDirection.MAXIMIZE if self.mode == "max" else StudyDirection.MINIMIZE
            verbosity = optuna.logging.get_verbosity()
            optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created": not for the console
            try:
                self._study_id = self._storage.create_new_study([direction], self.study)
            finally:
                optuna.logging.set_verbosity(verbosity)
            self._storage.set_study_user_attr(self._study_id, "metric", self.metric)
        latest = {}  # each trial's latest attempt (a failed trial retried has several)
        for frozen in self._storage.get_all_trials(self._study_id, deepcopy=False):
            if isinstance(frozen.user_attrs.get("ray_trial_id"), str):
                latest[frozen.user_attrs["ray_trial_id"]] = frozen
        for key, frozen in latest.items():
            t = self._trials.get(key)
            if t is None:
                r = frozen.user_attrs.get("round", 0)
                t = self._trials[key] = _Trial(key, r if isinstance(r, int) else 0, {}, _now())
            elif t.number is not None or frozen.state != TrialState.RUNNING:
                continue  # it ended before: what was seen here since is a new attempt
            t.number = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, frozen.number)
            t.values = {**frozen.intermediate_values, **t.values}
            t.written = dict(frozen.intermediate_values)
            t.closed = frozen.state != TrialState.RUNNING

    def _write(self) -> None:
        from optuna.trial import FrozenTrial, TrialState

        if self._storage is None:
            self.open()
        storage, backend = self._storage, self._backend
        dirty = [self._trials[k] for k in sorted(self._dirty) if k in self._trials]
        self._dirty = set()
        for t in dirty:
            if t.number is None:  # one append of its own: the storage hands out the id
                params, dists = trial_params(self.params, t.config)
                template = FrozenTrial(
                    number=0,
                    state=TrialState.RUNNING,
                    value=None,
                    datetime_start=t.started,
                    datetime_complete=None,
                    params=params,
                    distributions=dists,
                    user_attrs={"round": t.round, "ray_trial_id": t.key},
                    system_attrs={},
                    intermediate_values=dict(t.values),
                    trial_id=0,
                )
                t.number, t.written = storage.create_new_trial(self._study_id, template_trial=template), dict(t.values)
        with backend.batch():  # the rest in one append
            for t in dirty:
                for step in sorted(s for s, v in t.values.items() if t.written.get(s) != v):
                    storage.set_trial_intermediate_value(t.number, step, t.values[step])
                t.written = dict(t.values)
                if t.status is not None and not t.closed:
                    state, value = end_state(t.status, t.values)
                    storage.set_trial_user_attr(t.number, "status", t.status)
                    storage.set_trial_user_attr(t.number, "epochs", t.epochs)
                    storage.set_trial_state_values(t.number, TrialState[state], None if value is None else [value])
                    t.closed = True


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def damaged_tail(f: BinaryIO, window: int = 1 << 20) -> int:
    """How many bytes at the end of journal ``f`` are not whole log lines: a last line without
    its newline or not JSON (cut short by a crash or a full disk), and such lines before it.
    Optuna stops reading at a line that is not JSON, and an append onto a cut-short line would
    merge the two. Only the last ``window`` bytes are looked at."""
    start = max(0, f.seek(0, os.SEEK_END) - window)
    f.seek(start)
    tail = f.read()
    keep = len(tail) if tail.endswith(b"\n") else tail.rfind(b"\n") + 1
    if keep == 0 and start > 0:
        return 0  # no line ends in the window: not a line cut short
    while keep > 0:
        begin = tail.rfind(b"\n", 0, keep - 1) + 1
        if begin == 0 and start > 0:
            break  # the line starts before the window: leave it
        try:
            json.loads(tail[begin:keep])
            break
        except (ValueError, RecursionError):
            keep = begin
    return len(tail) - keep


def _backend_class() -> type:
    from optuna.storages.journal import JournalFileBackend

    class Batched(JournalFileBackend):  # type: ignore[misc]
        """Optuna's journal file, with appends held back inside :meth:`batch` and written in
        one go (one lock, one fsync) at its end. Only writes whose result the storage does not
        need at once go inside (intermediate values, attributes, a trial's end)."""

        _held: list[dict[str, Any]] | None = None

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            if self._held is not None:
                self._held.extend(logs)
            else:
                super().append_logs(logs)

        def repair(self) -> int:
            """Cut the journal back to its last whole line (:func:`damaged_tail`) under its lock."""
            from optuna.storages.journal._file import get_lock_file

            with get_lock_file(self._lock), open(self._file_path, "rb+") as f:
                cut = damaged_tail(f)
                if cut:
                    f.truncate(f.seek(0, os.SEEK_END) - cut)
                    os.fsync(f.fileno())
                    logger.warning("the Optuna journal %s: a last line cut short dropped (%d bytes)", f.name, cut)
            return cut

        @contextlib.contextmanager
        def batch(self) -> Iterator[None]:
            self._held = []
            try:
                yield
            finally:
                held, self._held = self._held, None
                if held:
                    super().append_logs(held)

    return Batched


def _batched_backend(path: str) -> Any:
    return _backend_class()(path)  # a class made on first use: optuna is imported only when it writes
