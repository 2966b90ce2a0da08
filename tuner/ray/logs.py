"""Ray's log records on the driver's console: one line each, their tracebacks in a file.

Ray Tune logs every failed trial at ERROR with the worker's whole traceback (tuner's and Ray's
frames included), and a run's end with "Trials did not complete"; Ray's core logs a task's
error it thinks unhandled the same way. tuner says all of it already, in its own words: the
progress line counts errors, and a failed run ends with one line a kind of error naming the
user's own frame (``docs/functions.md``). :func:`install` puts a filter on the handlers of
Ray's loggers: those records go to a log file only (``$TUNER_LOG_DIR``, see
:func:`tuner.errors.log_folders`), and any other record that carries a traceback shows its first
line on the console with where the rest is.

Ray's own processes speak to the driver another way too: the raylet's and the GCS's messages
(a worker process that died, a raylet that was killed, with the last 20 lines of its log) are
printed by Ray's driver (``ray._private.worker.print_to_stdstream``), not logged. :func:`install`
sends those to the same file, with one console line an event in tuner's words (a worker node
lost, a trial's process died); what a worker process itself prints (with ``log_to_driver``) is
printed as Ray prints it. A trial function's own output is in its trial's ``output.txt``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.errors import log_folders

# What tuner reports itself, in its own words: a trial's error, the run's end, how to resume
# (``tuner resume``, not Ray's ``Tuner.restore``), results it reads itself, a Ctrl-C ("interrupted").
# And what concerns only tuner, not its user: Ray's note, for every run from a project with a
# .git or a .venv, that it leaves those out of the folder shipped to the workers (tuner's own
# excludes leave them out anyway, docs/cluster.md).
SAID_BY_TUNER = re.compile(
    r"^(Trial task failed for trial|Trials did not complete|Unhandled error \(suppress with"
    r"|Experiment has been interrupted, but the most recent state was saved|Failed to fetch metrics for"
    r"|Stop signal received \(e\.g\. via SIGINT/Ctrl\+C\), ending Ray Tune run"
    r"|Directory '[^']*' is now ignored by default when packaging the working directory)"
)


class _Filter(logging.Filter):
    """The filter :func:`install` sets (one for the process)."""

    def __init__(self) -> None:
        super().__init__("tuner")
        self.path: Path | None = None
        self._file: logging.FileHandler | None = None
        self._shown: dict[tuple[str, int, str], float] = {}  # a console line: when it was last shown
        self._last: tuple[logging.LogRecord, bool] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._last is not None and self._last[0] is record:  # the same record at another handler
            return self._last[1]
        shown = self._filter(record)
        self._last = (record, shown)
        return shown

    def _filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: shown as Ray made it
            return True
        said = SAID_BY_TUNER.match(message) is not None
        if not said and record.exc_info is None and "\n" not in message:
            return self._first_in_a_while(record, message)
        where = self._keep(record)
        if said:
            return False
        first = message.splitlines()[0] if message.strip() else record.levelname
        record.msg, record.args, record.exc_info, record.exc_text = (f"{first} (the rest: {where})", None, None, None)
        return self._first_in_a_while(record, first)

    def _first_in_a_while(self, record: logging.LogRecord, line: str) -> bool:
        """Whether to show ``line`` on the console: not when the same line was shown within
        :data:`_SAID_S` (Ray repeats a failing upload's warning every half second; the log
        file keeps every one of them)."""
        key = (record.name, record.levelno, line)
        now = time.monotonic()
        if now - self._shown.get(key, -math.inf) < _SAID_S:
            return False
        self._shown[key] = now
        return True

    def _keep(self, record: logging.LogRecord) -> str:
        """Write ``record`` whole to the log file; returns its path (or why there is none)."""
        if self._file is None:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            for folder in log_folders():
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    path = folder / f"ray-{stamp}-{os.getpid()}.log"
                    self._file = logging.FileHandler(path, encoding="utf-8", delay=False)
                    self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
                    self.path = path
                    break
                except OSError:
                    continue
        if self._file is None:
            return "no log file could be written"
        self._file.emit(record)
        return str(self.path)


_FILTER = _Filter()


_DIED = "a trial's process died"
# Ray's messages from its own processes (``pid`` raylet, gcs_server, autoscaler), in tuner's words.
_EVENTS = (
    (
        re.compile(r"Raylet is terminated|node .*(?:died|was lost|is dead|marked (?:as )?dead)", re.I),
        "a worker node was lost: its trials restart from their checkpoints",
    ),
    (re.compile(r"worker (?:died|was killed)|worker .*exited unexpectedly", re.I), _DIED),
)
_SYSTEM = frozenset({"raylet", "gcs_server", "autoscaler"})
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SAID_S = 60.0  # the same console line again within this is not repeated (a lost node: its raylet's
# message, then the GCS's when it misses the node's heartbeats, some 30 s later; its workers' deaths)


class _Streams:
    """What :func:`install` puts in place of Ray's ``print_to_stdstream``."""

    def __init__(self, ray_print: Callable[..., Any]) -> None:
        self.ray_print = ray_print
        self.said: dict[str, float] = {}

    def __call__(self, data: dict[str, Any], ignore_prefix: bool = False) -> None:
        if str(data.get("pid")) not in _SYSTEM:  # a worker's own output: as Ray prints it
            self.ray_print(data, ignore_prefix)
            return
        lines = [_ANSI.sub("", str(line)) for line in data.get("lines") or []]
        if not any(line.strip() for line in lines):
            return
        text = "\n".join(lines)
        record = logging.LogRecord(f"ray.{data.get('pid')}", logging.WARNING, "", 0, text, None, None)
        where = _FILTER._keep(record)
        said = next((said for pattern, said in _EVENTS if pattern.search(text)), None)
        hung = _hung_trial() if said == _DIED else None
        if said is None:
            said = next(line for line in lines if line.strip()).strip()[:200]
        now = time.monotonic()
        if hung is None:
            if now - self.said.get(said, -_SAID_S) < _SAID_S:
                return
            self.said[said] = now
        try:  # a process tuner ended as hung did not die of what Ray's message guesses (memory...)
            print(hung or f"{said} (Ray's message: {where})", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a console whose reader went away
            pass


# The folders of the trials started by this process's experiment, by trial id, with when they
# last said they were stopped as hung (:func:`_hung_stamp`): Ray's message of a dead worker
# names no trial, but a trial that tuner ended as hung wrote why into its folder first.
_TRIALS: dict[str, tuple[Path, tuple[int, int]]] = {}


def trial_started(trial_id: str, folder: str | os.PathLike[str] | None) -> None:
    """Note a trial's folder on this machine (Tune's ``trial.local_path``), as it (re)starts:
    a timeout of an earlier start is not this one's."""
    if folder:
        _TRIALS[str(trial_id)] = (Path(folder), _hung_stamp(Path(folder)))


def trial_ended(trial_id: str) -> None:
    """Forget a trial that ended without an error (no process of it will die as hung)."""
    _TRIALS.pop(str(trial_id), None)


def _hung_stamp(folder: Path) -> tuple[int, int]:
    """When the trial's watchdog last wrote its reason (:data:`~tuner.records.TIMEOUT_FILE`)
    and its threads' stacks (:data:`~tuner.records.TIMEOUT_TRACE_FILE`, when not empty): 0 for none."""
    from tuner.records import TIMEOUT_FILE, TIMEOUT_TRACE_FILE

    stamp = []
    for name in (TIMEOUT_FILE, TIMEOUT_TRACE_FILE):
        try:
            st = (folder / name).stat()
            stamp.append(st.st_mtime_ns if st.st_size else 0)
        except OSError:
            stamp.append(0)
    return stamp[0], stamp[1]


def _hung_trial() -> str | None:
    """``trial <id>: <why>`` for a noted trial that tuner stopped as hung since it was noted
    (:func:`tuner.results.timeout_reason`), each once; None when none did."""
    from tuner.results import timeout_reason

    for trial_id, (folder, seen) in list(_TRIALS.items()):
        stamp = _hung_stamp(folder)
        if stamp == seen or stamp == (0, 0):
            continue
        _TRIALS[trial_id] = (folder, stamp)
        reason = timeout_reason(folder)
        if reason:
            return f"trial {trial_id}: {reason}"
    return None


def _install_streams() -> None:
    try:
        from ray._private import worker as ray_worker
    except ImportError:
        return
    current = getattr(ray_worker, "print_to_stdstream", None)
    if current is not None and not isinstance(current, _Streams):
        ray_worker.print_to_stdstream = _Streams(current)


def install() -> None:
    """Filter every handler of Ray's loggers (``ray`` and those under it) through
    :data:`_FILTER`, again for handlers added since, and Ray's messages from its own processes
    through :class:`_Streams` (idempotent)."""
    _install_streams()
    names = ["ray", *(n for n in logging.root.manager.loggerDict if n.startswith("ray."))]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def log_file() -> Path | None:
    """The file Ray's filtered records went to in this process (None: none yet)."""
    return _FILTER.path
