"""The arguments of tuner's commands and public functions, checked once at the boundary.

The command line parses text (:func:`parse_integer`, :func:`parse_number`: argparse's
``type=``) and the Python API takes values (:func:`integer`, :func:`number`, :func:`flag`,
:func:`mapping`, :func:`device`, :func:`path`, :func:`text`, :func:`choice`); both apply the
same bounds. A bad argument is an :class:`~tuner.errors.InputError` of one line naming it: the
flag on the command line (``--seeds``), the parameter in Python (``seeds``). Nothing here
imports torch: a driver never does.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from tuner.errors import InputError, show

MAX_INT = 10**9  # the largest count any argument takes when it names no bound of its own


def _bounds(value: float, low: float | None, high: float | None) -> str | None:
    """What is wrong with ``value`` against ``[low, high]`` (either may be None), or None."""
    if low is not None and value < low:
        return f"{value} must be >= {low}"
    if high is not None and value > high:
        return f"{value} must be <= {high}"
    return None


def integer(value: Any, name: str, low: int | None = None, high: int | None = MAX_INT, why: str = "") -> int:
    """``value`` as an int within ``[low, high]``: an ``int`` and not a ``bool`` (``True`` is
    no count); ``why`` is said after a value below ``low``.

    Raises:
        InputError: ``name: VALUE is not an integer`` or ``name: VALUE must be >= LOW``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name}: {show(value, 40)} is not an integer")
    wrong = _bounds(value, low, high)
    if wrong is not None:
        raise InputError(f"{name}: {wrong}{why if low is not None and value < low else ''}")
    return value


def optional_integer(value: Any, name: str, low: int | None = None, high: int | None = MAX_INT) -> int | None:
    """None, or :func:`integer`."""
    return None if value is None else integer(value, name, low, high)


def number(value: Any, name: str, low: float | None = None) -> float:
    """``value`` as a finite float, at least ``low``: an int or a float, never a ``bool``.

    Raises:
        InputError: not a number, not finite, or below ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}: {show(value, 40)} is not a number")
    try:
        x = float(value)
    except OverflowError:  # an int beyond a float's range
        x = math.inf
    if not math.isfinite(x) or (low is not None and x < low):
        raise InputError(
            f"{name}: {show(value, 40)} must be a finite number" + (f" >= {low:g}" if low is not None else "")
        )
    return x


def flag(value: Any, name: str) -> bool:
    """``value`` as a switch: ``True`` or ``False`` only (``"no"`` is a string, and true).

    Raises:
        InputError: anything else.
    """
    if not isinstance(value, bool):
        raise InputError(f"{name}: {show(value, 40)} must be True or False")
    return value


def text(value: Any, name: str) -> str | None:
    """None, or a string.

    Raises:
        InputError: anything else.
    """
    if value is not None and not isinstance(value, str):
        raise InputError(f"{name}: {show(value, 40)} must be a string")
    return value


def choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value``, one of ``choices``.

    Raises:
        InputError: anything else, naming the choices.
    """
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name}: {show(value, 40)} is not one of {', '.join(choices)}")
    return value


def path(value: Any, name: str) -> str | os.PathLike[str]:
    """``value`` as a path: a non-empty ``str`` or ``os.PathLike`` (a ``pathlib.Path``).

    Raises:
        InputError: anything else (None, a number, bytes), or an empty string.
    """
    if isinstance(value, os.PathLike):
        value_text = os.fspath(value)
        if isinstance(value_text, str):
            return value
    elif isinstance(value, str):
        if value.strip():
            return value
        raise InputError(f"{name}: {show(value, 40)} is not a path")
    raise InputError(f"{name}: {show(value, 40)} must be a path (a str or a pathlib.Path)")


def mapping(value: Any, name: str, example: str = "") -> dict[str, Any] | None:
    """None, or ``value`` as a dict: a ``Mapping`` whose keys are strings.

    Raises:
        InputError: not a mapping (``example`` shows one), or a key that is not a string.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{name}: {show(value, 40)} must be a mapping of keys to values{example}")
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{name}: key {show(key, 40)}: a key must be a string")
    return dict(value)


def device(value: Any, name: str) -> Any:
    """None (the default device), a device's name (``"cpu"``, ``"cuda"``) or a ``torch.device``.

    Raises:
        InputError: anything else (an int such as ``3`` is no device here).
    """
    torch = sys.modules.get("torch")  # a torch.device exists only once torch was imported
    if value is None or isinstance(value, str) or (torch is not None and isinstance(value, torch.device)):
        return value
    raise InputError(f"{name}: {show(value, 40)} must be 'cpu', 'cuda' or a torch.device")


def function(value: Any, name: str) -> Callable[..., Any] | None:
    """None, or something to call (where lines go: ``write=print``).

    Raises:
        InputError: anything else.
    """
    if value is not None and not callable(value):
        raise InputError(f"{name}: {show(value, 40)} must be a function (such as print)")
    return value


# -- the command line: argparse's ``type=`` ---------------------------------------------------


def parse_integer(low: int, high: int = MAX_INT) -> Callable[[str], int]:
    """argparse's ``type`` for an integer flag within ``[low, high]``: the bounds of
    :func:`integer`, the flag named by argparse (``argument --seeds: 1 must be >= 2``)."""

    def parse(value: str) -> int:
        try:
            number_ = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value[:40]!r} is not an integer") from None
        wrong = _bounds(number_, low, high)
        if wrong is not None:
            raise argparse.ArgumentTypeError(wrong)
        return number_

    return parse


def parse_number(value: str) -> float:
    """argparse's ``type`` for a finite number (``--tolerance``)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} must be a finite number")
    return x
