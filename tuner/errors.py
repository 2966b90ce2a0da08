"""The errors ``tuner`` raises, how they read, and where a bug's traceback goes.

Bad input (a sweep file, an export file, a flag, a data file) is an :class:`InputError`:
the command line prints each of its problems on one line and exits with status 2, before
anything is started or written. A problem names the file, the key path, the value and the
rule: ``sweeps/x.yaml: search.parameters.train.lr.min: 0 must be > 0 for log_uniform``.

A failure of the run itself is a :class:`RunError` (exit 1, one readable block). Anything
else is a bug of tuner's: :func:`log_bug` writes its traceback to a log file and the
console gets one line naming that file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# The longest a value is shown in a problem line: a hostile file's value may be huge, and
# showing it must cost nothing (the value is cut before it is turned into text, where it can).
MAX_VALUE_TEXT = 60


class InputError(Exception):
    """One or more problems with the user's input; ``problems`` holds one line each."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RunError(Exception):
    """The run itself failed (not the input): exit status 1. ``details`` are extra lines
    (the first error of each kind, where the logs are) printed under the message."""

    def __init__(self, message: str, details: Iterable[str] = ()) -> None:
        self.details = list(details)
        super().__init__(message)


NO_VALUE: Any = object()  # for problems about a key that has no value (missing, unknown)


def problem(source: str, key: str, value: Any, rule: str) -> str:
    """One problem line: ``source: key: value rule``."""
    where = f"{source}: {key}" if key else source
    return f"{where}: {show(value)} {rule}" if value is not NO_VALUE else f"{where}: {rule}"


def show(value: Any, limit: int = MAX_VALUE_TEXT) -> str:
    """A value as a problem line shows it, at most ``limit`` characters. Containers are
    summarised before they are turned into text, so a huge (or alias-bombed) value costs
    no more than a small one."""
    if isinstance(value, (dict, list, tuple, set)):
        n = len(value)
        if n > 8:
            return f"<{type(value).__name__} of {n} items>"
        try:
            text = repr(value) if _is_shallow(value) else f"<{type(value).__name__} of {n} items>"
        except RecursionError:
            text = f"<{type(value).__name__}>"
    elif isinstance(value, str):
        text = repr(value[: limit + 1])
    elif isinstance(value, bytes):
        text = repr(value[: limit + 1])
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """``text`` as the console may show it: control and format characters (a newline, an
    escape sequence, a right-to-left override) written as escapes. A problem line quotes
    paths and names from the user's files and folders; a folder named with a newline and an
    escape sequence must not print a second line, or rewrite the one shown."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in " \t" else ascii(ch)[1:-1] for ch in text)


def message(error: BaseException) -> str:
    """``str(error)``, or what can be said of it when its ``__str__`` itself fails (a user's
    exception class may): an error is shown, never a second one raised while showing it."""
    try:
        return str(error)
    except Exception:
        try:
            return repr(error)
        except Exception:
            return f"<unprintable {type(error).__name__}>"


def first_line(error: BaseException, limit: int = 200, empty: str = "") -> str:
    """The first line of :func:`message` (``error``'s text), at most ``limit`` characters (a
    longer one cut, and marked ``...``), or ``empty`` when the error says nothing: how a one-line
    message quotes an error it wraps."""
    lines = message(error).strip().splitlines()
    if not lines:
        return empty
    return lines[0] if len(lines[0]) <= limit else lines[0][: max(limit - 3, 0)] + "..."


def warn_stderr(line: str) -> None:
    """Print ``warning: line`` to standard error, escaped (:func:`printable`)."""
    print(printable(f"warning: {line}"), file=sys.stderr, flush=True)  # a name may hold control characters


def _is_shallow(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return all(not isinstance(x, (dict, list, tuple, set)) or len(x) <= 8 and _is_shallow(x) for x in items)


def closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The one of ``known`` closest to ``word`` (a misspelling's intent), or None."""
    close = difflib.get_close_matches(str(word)[:200], [str(k) for k in known], n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, known: Iterable[str], cutoff: float = 0.6) -> str:
    """``"did you mean 'epochs'? "`` for the closest of ``known``, else ``""``."""
    close = closest(word, known, cutoff)
    return f"did you mean {close!r}? " if close else ""


def log_dir() -> Path:
    """Where tuner's own logs go: ``$TUNER_LOG_DIR``, else ``~/.cache/tuner/logs``."""
    return Path(
        os.environ.get("TUNER_LOG_DIR")
        or Path(os.environ.get("TUNER_CACHE") or Path.home() / ".cache" / "tuner") / "logs"
    )


def log_folders() -> tuple[Path, ...]:
    """Where a log file may go, in order: :func:`log_dir`, else ``/tmp/tuner-logs`` (a home
    folder that cannot be written)."""
    return (log_dir(), Path("/tmp") / "tuner-logs")


def log_bug(error: BaseException, context: str = "") -> Path | None:
    """Write ``error``'s traceback to a new log file; returns its path (None when no log can
    be written: the console line then says so)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for folder in log_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"tuner-{stamp}-{os.getpid()}.log"
            path.write_text(f"{context}\n{text}" if context else text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


_IDS = re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")


def without_ids(line: str) -> str:
    """``line`` with the hex ids in it (a task's, an actor's, a node's, a worker's) written
    ``…``: the same error of two trials reads the same (``TaskID(f91b78d7...)``, ``The actor
    8d6e... is unavailable``)."""
    return _IDS.sub("…", line)
