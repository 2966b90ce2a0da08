"""The errors ``tuner`` raises for bad input, and how they read.

Bad input (a sweep file, an export file, a flag, a data file) is an :class:`InputError`:
the command line prints each of its problems on one line and exits with status 2, before
anything is started or written. A problem names the file, the key path, the value and the
rule: ``sweeps/x.yaml: search.parameters.train.lr.min: 0 must be > 0 for log_uniform``.
"""

from __future__ import annotations

from typing import Any, Iterable


class InputError(Exception):
    """One or more problems with the user's input; ``problems`` holds one line each."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RunError(Exception):
    """The run itself failed (not the input): exit status 1."""


def problem(source: str, key: str, value: Any, rule: str) -> str:
    """One problem line: ``source: key: value rule``."""
    where = f"{source}: {key}" if key else source
    return f"{where}: {_show(value)} {rule}" if value is not _NO_VALUE else f"{where}: {rule}"


_NO_VALUE: Any = object()
NO_VALUE: Any = _NO_VALUE  # for problems about a key that has no value (missing, unknown)


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
