"""Ray's log records on the driver's console: one line each, their tracebacks in a file.

Ray Tune logs every failed trial at ERROR with the worker's whole traceback (tuner's and Ray's
frames included), and a run's end with "Trials did not complete"; Ray's core logs a task's
error it thinks unhandled the same way. tuner says all of it already, in its own words: the
progress line counts errors, and a failed run ends with one line a kind of error naming the
user's own frame (``docs/functions.md``). :func:`install` puts a filter on the handlers of
Ray's loggers: those records go to a log file only (``$TUNER_LOG_DIR``, see
:func:`tuner.errors.log_folders`), and any other record that carries a traceback shows its first
line on the console with where the rest is.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from pathlib import Path

from tuner.errors import log_folders

# What tuner reports itself, in its own words: a trial's error, the run's end, how to resume
# (``tuner resume``, not Ray's ``Tuner.restore``), results it reads itself.
SAID_BY_TUNER = re.compile(
    r"^(Trial task failed for trial|Trials did not complete|Unhandled error \(suppress with"
    r"|Experiment has been interrupted, but the most recent state was saved|Failed to fetch metrics for)"
)


class _Filter(logging.Filter):
    """The filter :func:`install` sets (one for the process)."""

    def __init__(self) -> None:
        super().__init__("tuner")
        self.path: Path | None = None
        self._file: logging.FileHandler | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: shown as Ray made it
            return True
        said = SAID_BY_TUNER.match(message) is not None
        if not said and record.exc_info is None and "\n" not in message:
            return True
        where = self._keep(record)
        if said:
            return False
        record.msg, record.args, record.exc_info, record.exc_text = (
            f"{message.splitlines()[0] if message.strip() else record.levelname} (the rest: {where})",
            None,
            None,
            None,
        )
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


def install() -> None:
    """Filter every handler of Ray's loggers (``ray`` and those under it) through
    :data:`_FILTER`; again for handlers added since (idempotent)."""
    names = ["ray", *(n for n in logging.root.manager.loggerDict if n.startswith("ray."))]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def log_file() -> Path | None:
    """The file Ray's filtered records went to in this process (None: none yet)."""
    return _FILTER.path
