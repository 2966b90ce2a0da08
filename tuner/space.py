"""Search-space parameters and the scales they are sampled on.

A parameter is sampled uniformly on its *latent* scale and mapped back to its value:

============================  ======================  ==================================
distribution                  latent z                value
============================  ======================  ==================================
``uniform``                   x                       z
``log_uniform``               log10(x)                10^z
``one_minus_log_uniform``     log10(1 - β)            β = 1 - 10^z
``int_uniform``               x                       floor(z), z on [min, max + 1)
``int_log_uniform``           log10(x)                floor(10^z), z on [log10 min, log10(max + 1))
``values: [...]``             index                   values[index]
============================  ======================  ==================================

``one_minus_log_uniform`` with min 0.9 and max 0.999 draws 1 - β log-uniformly from
[0.001, 0.1]: 1/(1 - β), the number of steps the average remembers, is what changes the
behaviour, and it changes fastest near 1. Searchers may model the latent scale, but every
configuration a trial, a log or an export shows holds the value itself (β, never 1 - β).

This module is plain arithmetic; the Ray Tune domains and searchers built from it live in
:mod:`tuner.backend`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

DISTRIBUTIONS = ("uniform", "log_uniform", "one_minus_log_uniform", "int_uniform", "int_log_uniform")
INT_DISTRIBUTIONS = ("int_uniform", "int_log_uniform")


def bound_rules(distribution: str, low: float, high: float) -> list[tuple[str, Any, str]]:
    """The bound rules ``low``/``high`` break for ``distribution``, as (key, value, rule)."""
    problems: list[tuple[str, Any, str]] = []
    if distribution in ("log_uniform", "int_log_uniform"):
        if low <= 0:
            problems.append(("min", low, f"must be > 0 for {distribution}"))
        if high <= 0:
            problems.append(("max", high, f"must be > 0 for {distribution}"))
    if distribution == "one_minus_log_uniform":
        for key, v in (("min", low), ("max", high)):
            if not 0 < v < 1:
                problems.append((key, v, "must lie in (0, 1) for one_minus_log_uniform (β, not 1 - β)"))
    if distribution in INT_DISTRIBUTIONS:
        for key, v in (("min", low), ("max", high)):
            if float(v) != int(v):
                problems.append((key, v, f"must be an integer for {distribution}"))
    if not problems and low >= high:
        problems.append(("min", low, f"must be < max ({high})"))
    return problems


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: a dotted path into the config and how to draw it.

    Either ``values`` (categorical) or ``distribution`` with ``low < high`` is set.
    ``grid_points`` is the number of points a grid search takes on a continuous
    distribution, evenly spaced on the latent scale.
    """

    path: str
    distribution: str | None = None
    low: float | None = None
    high: float | None = None
    values: tuple[Any, ...] | None = None
    grid_points: int | None = None

    def __post_init__(self) -> None:
        if self.values is None:
            if self.distribution not in DISTRIBUTIONS:
                raise ValueError(f"{self.path}: unknown distribution {self.distribution!r}")
            assert self.low is not None and self.high is not None
            broken = bound_rules(self.distribution, self.low, self.high)
            if broken:
                key, value, rule = broken[0]
                raise ValueError(f"{self.path}.{key}: {value!r} {rule}")
        elif len(self.values) == 0:
            raise ValueError(f"{self.path}.values: must not be empty")

    @property
    def categorical(self) -> bool:
        return self.values is not None

    @property
    def is_int(self) -> bool:
        return self.distribution in INT_DISTRIBUTIONS

    def latent_bounds(self) -> tuple[float, float]:
        """The interval the latent z is drawn from (uniformly)."""
        if self.values is not None:
            return 0.0, float(len(self.values))
        assert self.low is not None and self.high is not None
        d, lo, hi = self.distribution, float(self.low), float(self.high)
        if d == "uniform":
            return lo, hi
        if d == "log_uniform":
            return math.log10(lo), math.log10(hi)
        if d == "one_minus_log_uniform":
            # β in [lo, hi] <=> 1 - β in [1 - hi, 1 - lo]; the larger β is the smaller z
            return math.log10(1.0 - hi), math.log10(1.0 - lo)
        if d == "int_uniform":
            return lo, hi + 1.0
        return math.log10(lo), math.log10(hi + 1.0)  # int_log_uniform

    def from_latent(self, z: float) -> Any:
        """The parameter value at latent ``z`` (clipped into the bounds)."""
        lo, hi = self.latent_bounds()
        z = min(max(float(z), lo), hi)
        if self.values is not None:
            return self.values[min(int(z), len(self.values) - 1)]
        d = self.distribution
        if d == "uniform":
            return z
        if d == "log_uniform":
            return 10.0**z
        if d == "one_minus_log_uniform":
            return 1.0 - 10.0**z
        assert self.low is not None and self.high is not None
        x = z if d == "int_uniform" else 10.0**z
        return int(min(max(math.floor(x + 1e-9), self.low), self.high))

    def to_latent(self, x: Any) -> float:
        """The latent coordinate of value ``x`` (for a categorical: its index)."""
        if self.values is not None:
            return float(list(self.values).index(x)) + 0.5
        d = self.distribution
        if d == "uniform":
            return float(x)
        if d == "log_uniform":
            return math.log10(float(x))
        if d == "one_minus_log_uniform":
            return math.log10(1.0 - float(x))
        if d == "int_uniform":
            return float(x) + 0.5
        return math.log10(float(x) + 0.5)  # int_log_uniform: the middle of x's latent cell

    def sample(self, rng: np.random.Generator | np.random.RandomState, size: int | None = None) -> Any:
        """Draw value(s) with ``rng``: uniform on the latent scale, mapped back."""
        lo, hi = self.latent_bounds()
        if size is None:
            return self.from_latent(rng.uniform(lo, hi))
        return [self.from_latent(z) for z in rng.uniform(lo, hi, size)]

    def grid(self) -> list[Any]:
        """The grid-search points: all ``values``, or ``grid_points`` points evenly spaced on
        the latent scale from min to max (integers deduplicated)."""
        if self.values is not None:
            return list(self.values)
        if not self.grid_points:
            raise ValueError(f"{self.path}: grid search needs values or grid_points")
        assert self.low is not None and self.high is not None
        if self.distribution == "int_uniform":
            return sorted({int(round(p)) for p in np.linspace(self.low, self.high, self.grid_points)})
        if self.distribution == "int_log_uniform":
            zs = np.linspace(math.log10(self.low), math.log10(self.high), self.grid_points)
            return sorted({int(round(10.0**z)) for z in zs})
        lo, hi = self.latent_bounds()
        points = [self.from_latent(z) for z in np.linspace(lo, hi, self.grid_points)]
        return sorted(points)

    @classmethod
    def from_dict(cls, path: str, d: dict[str, Any]) -> Parameter:
        """Read the sweep-file form back (as :meth:`to_dict` writes it)."""
        if "values" in d:
            return cls(path, values=tuple(d["values"]))
        return cls(path, d["distribution"], d["min"], d["max"], grid_points=d.get("grid_points"))

    def to_dict(self) -> dict[str, Any]:
        """The sweep-file form of this parameter."""
        if self.values is not None:
            return {"values": list(self.values)}
        out: dict[str, Any] = {"distribution": self.distribution, "min": self.low, "max": self.high}
        if self.grid_points:
            out["grid_points"] = self.grid_points
        return out


def get_path(config: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in nested ``config`` (``KeyError`` if absent)."""
    node: Any = config
    for part in path.split("."):
        node = node[part]
    return node


def apply_params(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of nested ``config`` with each dotted-path param set to its value."""
    import copy

    out = copy.deepcopy(config)
    for path, value in params.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def grid_size(parameters: Sequence[Parameter]) -> int:
    """The number of points in the cross product of the parameters' grids."""
    n = 1
    for p in parameters:
        n *= len(p.grid())
    return n
