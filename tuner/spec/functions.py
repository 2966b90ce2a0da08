"""The user's functions a sweep names, checked before anything runs: a trial function must be
callable as ``fn(config, run)`` and run its training when called (not a generator, not a
coroutine); a model function as ``fn(input_shape, num_outputs, **model.kwargs)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any


def function_problem(fn: Callable[..., Any], attr: str) -> str | None:
    """Why ``fn`` cannot be a trial function, called as ``fn(config, run)`` and expected to
    train and report as it runs (see ``docs/functions.md``); None when it can."""
    if inspect.isasyncgenfunction(fn) or inspect.iscoroutinefunction(fn):
        return (
            f"is an async function ({'an async generator' if inspect.isasyncgenfunction(fn) else 'async def'}): "
            f"tuner calls {attr}(config, run) as a plain function; make it a def that calls run.report(...) each epoch"
        )
    if inspect.isgeneratorfunction(fn):
        return (
            f"is a generator function (it yields): calling {attr}(config, run) would run none of it; "
            "make it a def that calls run.report(...) each epoch instead of yielding"
        )
    rule = call_problem(fn, f"{attr}(config, run)", 2)
    return f"{rule} (it must take the config and the run as its first two positional parameters)" if rule else None


def call_problem(fn: Callable[..., Any], shown: str, positional: int, keywords: Sequence[str] = ()) -> str | None:
    """Why ``fn`` cannot be called with ``positional`` positional arguments and ``keywords``
    (as ``shown``), by its signature; None when it can or has no signature to tell."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or an object without a signature: its call will tell
        return None
    try:
        signature.bind(*[object()] * positional, **dict.fromkeys(keywords))
    except TypeError as e:
        return f"cannot be called as {shown}: {str(e)[:200]}"
    return None


def model_problem(fn: Callable[..., Any], attr: str, kwargs: Any) -> str | None:
    """Why ``fn`` cannot be a model function, called as ``fn(input_shape, num_outputs,
    **model.kwargs)`` (see :func:`tuner.models.build_model`); None when it can."""
    keywords = [k for k in kwargs if isinstance(k, str)] if isinstance(kwargs, dict) else []
    shown = f"{attr}(input_shape, num_outputs{', **model.kwargs' if keywords else ''})"
    return call_problem(fn, shown, 2, keywords)
