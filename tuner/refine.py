"""Refine rounds: zoom the search ranges in on the region where the best configurations lie.

After each round, every numeric parameter's range shrinks to the span of the top-k
configurations (all rounds so far) on that parameter's own scale -- log10(x) for
``log_uniform``, log10(1 - β) for ``one_minus_log_uniform``, x for ``uniform`` -- widened
on each side by ``margin`` times that span, and clipped to the original bounds. Integers
work on the same scales and round outward to whole numbers. A categorical parameter keeps
the values that appear in the top-k.

The rule for a degenerate span: when the top-k span less than ``MIN_FRACTION`` (10%) of the
original range on that scale (e.g. they all sit at one point), the span is taken as 10% of
the original range centred on them, so the next range is never empty.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

from tuner.space import Parameter

MIN_FRACTION = 0.1


def scale(p: Parameter, x: float) -> float:
    """``x`` on ``p``'s own scale (no integer cells): log10(x), log10(1 - β) or x."""
    if p.distribution in ("log_uniform", "int_log_uniform"):
        return math.log10(float(x))
    if p.distribution == "one_minus_log_uniform":
        return math.log10(1.0 - float(x))
    return float(x)


def unscale(p: Parameter, z: float) -> float:
    """The inverse of :func:`scale`."""
    if p.distribution in ("log_uniform", "int_log_uniform"):
        return 10.0**z
    if p.distribution == "one_minus_log_uniform":
        return 1.0 - 10.0**z
    return z


def refine_parameter(current: Parameter, original: Parameter, top_values: Sequence[Any],
                     margin: float) -> Parameter:
    """The next round's range of one parameter from the values the top-k configurations hold.

    Args:
        current: this round's parameter (its range is not used: the top-k decide).
        original: the parameter as the sweep file gave it (the clip bounds).
        top_values: the values of the top-k configurations, best first.
        margin: widening on each side, as a fraction of the span (>= 0).
    """
    if not top_values:
        return current
    if original.values is not None:
        keep = [v for v in original.values if any(v == t for t in top_values)]
        return replace(current, values=tuple(keep) if keep else current.values)
    assert original.low is not None and original.high is not None
    z_lo, z_hi = sorted((scale(original, original.low), scale(original, original.high)))
    zs = [scale(original, v) for v in top_values]
    lo, hi = min(zs), max(zs)
    width = max(hi - lo, MIN_FRACTION * (z_hi - z_lo))
    centre = (lo + hi) / 2.0
    lo, hi = centre - width / 2.0 * (1.0 + 2.0 * margin), centre + width / 2.0 * (1.0 + 2.0 * margin)
    lo, hi = max(lo, z_lo), min(hi, z_hi)
    a, b = sorted((unscale(original, lo), unscale(original, hi)))
    if original.is_int:
        a, b = math.floor(a + 1e-9), math.ceil(b - 1e-9)
        a, b = max(a, int(original.low)), min(b, int(original.high))
        if a >= b:  # one integer left: keep a neighbour so min < max
            a, b = (a, a + 1) if a < original.high else (b - 1, b)
        return replace(current, low=int(a), high=int(b))
    a, b = max(a, float(original.low)), min(b, float(original.high))
    if a >= b:  # the clipped span collapsed at a bound: keep the smallest usable slice there
        eps = (float(original.high) - float(original.low)) * 1e-6
        a, b = (a - eps, a) if a >= float(original.high) else (a, a + eps)
    return replace(current, low=a, high=b)


def next_parameters(current: Sequence[Parameter], original: Sequence[Parameter],
                    top_params: Sequence[dict[str, Any]], margin: float) -> list[Parameter]:
    """The next round's parameters from the top-k configurations (each a ``{path: value}``)."""
    by_path = {p.path: p for p in original}
    out = []
    for p in current:
        values = [params[p.path] for params in top_params if p.path in params]
        out.append(refine_parameter(p, by_path[p.path], values, margin))
    return out


def describe(params: Sequence[Parameter]) -> list[str]:
    """One line per parameter: its range or values, for the progress output."""
    lines = []
    for p in params:
        if p.values is not None:
            lines.append(f"  {p.path}: {list(p.values)}")
        else:
            lines.append(f"  {p.path}: [{p.low:.4g}, {p.high:.4g}] ({p.distribution})")
    return lines
