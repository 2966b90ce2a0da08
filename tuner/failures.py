"""A trial function's failure in one line: the error and the innermost frame of the user's own
code (``ValueError: boom (in fit, at train.py:12)``), as ``tuner try``, a failed trial's
summary and the early stop of a run whose first trials all fail alike show it."""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from collections.abc import Sequence

from tuner.errors import first_line


def no_report(function: str) -> str:
    """The failure of a trial function that returned without a single report."""
    return f"{function} returned without a single run.report(...): nothing to optimise"


def describe_exit(error: SystemExit, function: str) -> str:
    """``the trial function train:fit called sys.exit(3) (in fit, at train.py:4): ...``: a
    ``SystemExit`` out of the user's function, which is its failure (it must return or raise,
    never end the process)."""
    shown = "" if error.code is None else repr(error.code)[:100]
    return (
        f"the trial function {function} called sys.exit({shown}){_where(error)}: "
        "return, or raise an exception to fail the trial"
    )


def describe_interrupt(error: KeyboardInterrupt, function: str) -> str:
    """A ``KeyboardInterrupt`` the trial function raised itself, no Ctrl-C having come: the
    trial's failure (Ray would make it a ``TaskCancelledError`` naming its task)."""
    return (
        f"the trial function {function} raised KeyboardInterrupt (no Ctrl-C came){_where(error)}: "
        "raise an exception to fail the trial"
    )


def _where(error: BaseException) -> str:
    """`` (in fit, at train.py:12)``: the innermost frame of ``error`` that is the user's own."""
    own = user_frames(error)
    return f" (in {own[-1].name}, at {os.path.basename(own[-1].filename)}:{own[-1].lineno})" if own else ""


def user_files(refs: Sequence[str]) -> list[str]:
    """The source files of the user's modules that ``refs`` name (``"package.module:function"``,
    tuner's own left out), as far as this process has imported them: :func:`user_frames`'
    ``theirs``."""
    return [
        m.__file__
        for m in (sys.modules.get(ref.partition(":")[0]) for ref in refs if not ref.startswith("tuner."))
        if m is not None and getattr(m, "__file__", None)
    ]


def user_frames(error: BaseException, theirs: Sequence[str] = ()) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback that are the user's own code: in a file of
    ``theirs`` (the modules a sweep names, wherever they are installed), or outside tuner's
    packages, the installed libraries and the standard library."""
    import tuner
    import tuner.models

    paths = sysconfig.get_paths()
    skip = tuple(
        os.path.normpath(p) + os.sep
        for p in {
            paths["stdlib"],
            paths["purelib"],
            paths["platlib"],
            os.path.dirname(os.path.abspath(tuner.__file__)),
            os.path.dirname(os.path.abspath(tuner.models.__file__)),
        }
    )
    own = {os.path.abspath(t) for t in theirs}
    return [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith("<")
        and (os.path.abspath(f.filename) in own or not os.path.normpath(f.filename).startswith(skip))
    ]


def describe_error(error: BaseException) -> str:
    """``ValueError: boom (in fit, at train.py:12)``: the error and the innermost frame that is
    the user's own code (:func:`user_frames`)."""
    return f"{type(error).__name__}: {first_line(error, 300)}{_where(error)}"
