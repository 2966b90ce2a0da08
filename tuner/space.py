"""Search-space parameters and the scales they live on: the one place for each scale's math.

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

Each distribution's :class:`Scale` is used by sampling, the searchers (:mod:`tuner.ray.search`),
refine rounds (:meth:`Parameter.restrict`) and the report's axes (:meth:`Parameter.ticks`),
as Optuna's ``_SearchSpaceTransform`` serves its samplers and plots.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

DISTRIBUTIONS = ("uniform", "log_uniform", "one_minus_log_uniform", "int_uniform", "int_log_uniform")
MAX_BOUND = 1e300  # |min|, |max| of a range at most: a range's span (max - min) stays finite
INT_DISTRIBUTIONS = ("int_uniform", "int_log_uniform")
# Refine: when the top-k span less than this fraction of the original range on the
# parameter's scale (all at one point, say), the span is taken as this fraction, centred on them.
MIN_FRACTION = 0.1


@dataclass(frozen=True)
class Scale:
    """How values map to the scale a distribution is uniform on, and back."""

    name: str  # as an axis says it: linear | log10 | log10(1 − β)

    def forward(self, x: float) -> float:
        """``x`` on this scale."""
        x = float(x)
        if self.name == "log10":
            return math.log10(x)
        if self.name == "log10(1 − β)":
            return math.log10(1.0 - x)
        return x

    def inverse(self, z: float) -> float:
        """The value at ``z`` on this scale."""
        if self.name == "log10":
            return 10.0**z
        if self.name == "log10(1 − β)":
            return 1.0 - 10.0**z
        return float(z)

    def domain_rule(self, x: float) -> str | None:
        """The rule ``x`` breaks to be on this scale (None: it is fine)."""
        if not math.isfinite(float(x)):
            return "must be a finite number"
        if self.name == "log10" and x <= 0:
            return "must be > 0"
        if self.name == "log10(1 − β)" and not 0 < x < 1:
            return "must lie in (0, 1)"
        return None


LINEAR, LOG, ONE_MINUS_LOG = Scale("linear"), Scale("log10"), Scale("log10(1 − β)")
SCALES = {
    "uniform": LINEAR,
    "log_uniform": LOG,
    "one_minus_log_uniform": ONE_MINUS_LOG,
    "int_uniform": LINEAR,
    "int_log_uniform": LOG,
}


def bound_rules(distribution: str, low: float, high: float) -> list[tuple[str, Any, str]]:
    """The bound rules ``low``/``high`` break for ``distribution``, as (key, value, rule)."""
    problems: list[tuple[str, Any, str]] = []
    for key, v in (("min", low), ("max", high)):
        rule = SCALES[distribution].domain_rule(v)
        if rule is not None:
            note = " (β, not 1 - β)" if distribution == "one_minus_log_uniform" else ""
            problems.append((key, v, f"{rule} for {distribution}{note}"))
        elif distribution in INT_DISTRIBUTIONS and float(v) != int(v):
            problems.append((key, v, f"must be an integer for {distribution}"))
    if not problems and low >= high:
        problems.append(("min", low, f"must be < max ({high})"))
    elif not problems and distribution not in INT_DISTRIBUTIONS:
        scale = SCALES[distribution]
        a, b = scale.forward(float(low)), scale.forward(float(high))
        slack = 1e-6 * (high - low)  # a round trip of either end through the scale lands on it, to this
        off = max(abs(scale.inverse(a) - low), abs(scale.inverse(b) - high)) if a != b else math.inf
        if not all(math.isfinite(z) for z in (a, b)) or not off <= slack:
            problems.append(("min", low, f"and max ({high}) are one point on {distribution}'s scale: widen the range"))
    return problems


def value_key(v: Any) -> Any:
    """What tells one configuration value from another, hashable, item by item for lists and
    mappings: equal numbers are one value (a value read back from JSON as 64.0 is the file's
    64), but a bool is never a number (Python's ``1 == True`` would make two choices one)."""
    if isinstance(v, bool) or v is None:
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("number", v)
    if isinstance(v, (list, tuple)):
        return ("list", tuple(value_key(x) for x in v))
    if isinstance(v, dict):
        return ("dict", frozenset((k, value_key(x)) for k, x in v.items()))
    return (type(v).__name__, v)


def same_value(a: Any, b: Any) -> bool:
    """Whether two values (of a categorical, of a configuration) are the same: :func:`value_key`."""
    return bool(value_key(a) == value_key(b))


@dataclass(frozen=True)
class Parameter:
    """One searched parameter: a dotted path into the config and how to draw it.

    Either ``values`` (categorical) or ``distribution`` with ``low < high`` is set.
    ``grid_points`` is the number of points a grid search takes on a continuous
    distribution, evenly spaced on its scale.
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
            if self.low is None or self.high is None:
                raise ValueError(f"{self.path}: {self.distribution} needs min and max")
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

    @property
    def scale(self) -> Scale:
        """The scale the distribution is uniform on (linear for a categorical's index)."""
        return SCALES[self.distribution] if self.distribution else LINEAR

    def _bounds(self) -> tuple[float, float]:
        assert self.low is not None and self.high is not None  # __post_init__ holds it
        return float(self.low), float(self.high)

    # -- the latent scale: what samplers and figures use ---------------------------------------

    def latent_bounds(self) -> tuple[float, float]:
        """The interval the latent z is drawn from (uniformly); an integer's cells reach to
        ``max + 1`` so that every integer gets the same share."""
        if self.values is not None:
            return 0.0, float(len(self.values))
        lo, hi = self._bounds()
        if self.is_int:
            hi += 1.0
        a, b = self.scale.forward(lo), self.scale.forward(hi)
        return (a, b) if a <= b else (b, a)  # 1 - β: the larger β is the smaller z

    def from_latent(self, z: float) -> Any:
        """The parameter value at latent ``z`` (clipped into the bounds)."""
        lo, hi = self.latent_bounds()
        z = min(max(float(z), lo), hi)
        if self.values is not None:
            return self.values[min(int(z), len(self.values) - 1)]
        x = self.scale.inverse(z)
        low, high = self._bounds()
        if self.is_int:
            return int(min(max(math.floor(x + 1e-9), low), high))
        return min(max(x, low), high)  # the scale's round trip may pass a bound by an ulp

    def to_latent(self, x: Any) -> float:
        """The latent coordinate of value ``x`` (a categorical's index, an integer's cell
        middle)."""
        if self.values is not None:
            index = next((i for i, v in enumerate(self.values) if same_value(v, x)), None)
            if index is None:
                raise ValueError(f"{self.path}: {x!r} is not one of its values")
            return float(index) + 0.5
        if self.is_int:
            return self.scale.forward(float(x) + 0.5)
        return self.scale.forward(float(x))

    def sample(self, rng: np.random.Generator | np.random.RandomState, size: int | None = None) -> Any:
        """Draw value(s) with ``rng``: uniform on the latent scale, mapped back."""
        lo, hi = self.latent_bounds()
        if size is None:
            return self.from_latent(rng.uniform(lo, hi))
        return [self.from_latent(z) for z in rng.uniform(lo, hi, size)]

    def grid(self) -> list[Any]:
        """The grid-search points: all ``values``, or ``grid_points`` points evenly spaced on
        the scale from min to max (integers rounded and deduplicated)."""
        if self.values is not None:
            return list(self.values)
        if not self.grid_points:
            raise ValueError(f"{self.path}: grid search needs values or grid_points")
        lo, hi = self._bounds()
        zs = np.linspace(self.scale.forward(lo), self.scale.forward(hi), self.grid_points)
        points = [self.scale.inverse(float(z)) for z in zs]
        if self.is_int:
            return sorted({int(round(p)) for p in points})
        return sorted(points)

    # -- refine: zoom in on the best region, on this scale --------------------------------------

    def restrict(self, top_values: Sequence[Any], margin: float, within: Parameter | None = None) -> Parameter:
        """The next refine round's parameter from the values the top-k configurations hold.

        The range shrinks to the span of ``top_values`` on this parameter's scale, widened on
        each side by ``margin`` × span and clipped to ``within``'s bounds (the sweep file's;
        default: this parameter's). A span under :data:`MIN_FRACTION` of the original range
        is taken as that fraction, centred on the values, so the range is never empty.
        Integers round outward. A categorical keeps the values in the top k.
        """
        original = within or self
        if not top_values:
            return self
        if original.values is not None:
            keep = [v for v in original.values if any(same_value(v, t) for t in top_values)]
            return replace(self, values=tuple(keep) if keep else self.values)
        o_lo, o_hi = original._bounds()
        f = original.scale.forward
        z_lo, z_hi = sorted((f(o_lo), f(o_hi)))
        zs = [f(v) for v in top_values]
        lo, hi = min(zs), max(zs)
        width = max(hi - lo, MIN_FRACTION * (z_hi - z_lo))
        centre = (lo + hi) / 2.0
        lo, hi = centre - width / 2.0 * (1.0 + 2.0 * margin), centre + width / 2.0 * (1.0 + 2.0 * margin)
        lo, hi = max(lo, z_lo), min(hi, z_hi)
        a, b = sorted((original.scale.inverse(lo), original.scale.inverse(hi)))
        if original.is_int:
            a, b = max(math.floor(a + 1e-9), int(o_lo)), min(math.ceil(b - 1e-9), int(o_hi))
            if a >= b:  # one integer left: keep a neighbour so min < max
                a, b = (a, a + 1) if a < o_hi else (b - 1, b)
            return replace(self, low=int(a), high=int(b))
        a, b = min(a, *top_values), max(b, *top_values)  # the top values themselves, to the ulp
        a, b = max(a, o_lo), min(b, o_hi)
        if a >= b:  # the clipped span collapsed at a bound: keep the smallest usable slice there
            eps = (o_hi - o_lo) * 1e-6
            a, b = (a - eps, a) if a >= o_hi else (a, a + eps)
        return replace(self, low=a, high=b)

    # -- how it reads ---------------------------------------------------------------------------

    def axis_label(self) -> str:
        """``train.lr (log10)``: the path and the scale a figure draws it on."""
        return f"{self.path} ({'values' if self.categorical else self.scale.name})"

    def ticks(self, lo: float, hi: float, n: int = 5) -> list[tuple[float, str]]:
        """Tick positions on the latent interval [lo, hi] with labels in the parameter's own
        units: every value for a categorical; round values (decades, 1-2-5 steps) on a log
        or 1 - β scale; evenly spaced otherwise."""
        if self.values is not None:
            return [(i + 0.5, short(v)) for i, v in enumerate(self.values)]
        if self.scale is LINEAR:
            return [(z, f"{z:.3g}") for z in np.linspace(lo, hi, n)]
        # log scales: decades and 1-2-5 steps inside [lo, hi] on 10^z (or 1 - 10^z)
        steps = [(z + math.log10(m)) for z in range(math.floor(lo), math.ceil(hi) + 1) for m in (1, 2, 5)]
        inside = [z for z in steps if lo - 1e-9 <= z <= hi + 1e-9]
        if len(inside) > 2 * n:
            inside = [z for z in inside if abs(z - round(z)) < 1e-9] or inside[:: max(1, len(inside) // n)]
        if len(inside) < 2:
            inside = [lo, hi]
        return [(z, f"{self.scale.inverse(z):.4g}") for z in inside]

    def describe(self) -> str:
        """One line: its range or values (the progress output of refine rounds)."""
        if self.values is not None:
            return f"{self.path}: {list(self.values)}"
        return f"{self.path}: [{self.low:.4g}, {self.high:.4g}] ({self.distribution})"

    # -- the sweep-file form ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, path: str, d: dict[str, Any]) -> Parameter:
        """Read the sweep-file form back (as :meth:`to_dict` writes it).

        Raises:
            ValueError: not a valid parameter (a missing key, a broken rule).
        """
        if not isinstance(d, dict):
            raise ValueError(f"{path}: must be a mapping")
        if "values" in d:
            if not isinstance(d["values"], list):
                raise ValueError(f"{path}.values: must be a list")
            return cls(path, values=tuple(d["values"]))
        try:
            low, high = float(d["min"]), float(d["max"])
        except KeyError as e:
            raise ValueError(f"{path}: missing {e.args[0]}") from None
        except (TypeError, ValueError):
            raise ValueError(f"{path}: min and max must be numbers") from None
        if not (abs(low) <= MAX_BOUND and abs(high) <= MAX_BOUND):  # NaN fails too
            raise ValueError(f"{path}: min and max must be finite numbers within +-{MAX_BOUND:g}")
        if d.get("distribution") in INT_DISTRIBUTIONS and low.is_integer() and high.is_integer():
            low, high = int(low), int(high)  # type: ignore[assignment]
        return cls(path, d.get("distribution"), low, high, grid_points=d.get("grid_points"))

    def to_dict(self) -> dict[str, Any]:
        """The sweep-file form of this parameter."""
        if self.values is not None:
            return {"values": list(self.values)}
        out: dict[str, Any] = {"distribution": self.distribution, "min": self.low, "max": self.high}
        if self.grid_points:
            out["grid_points"] = self.grid_points
        return out


def short(v: Any, limit: int = 40) -> str:
    """A value as a label shows it: 4 significant digits for a float, cut at ``limit``."""
    text = f"{v:.4g}" if isinstance(v, float) else str(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def get_path(config: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` in nested ``config`` (``KeyError`` if absent)."""
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, dict):
            raise KeyError(path)
        node = node[part]
    return node


def apply_params(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of nested ``config`` with each dotted-path param set to its value."""
    out = copy.deepcopy(config)
    for path, value in params.items():
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def grid_size(parameters: Sequence[Parameter]) -> int:
    """The number of points in the cross product of the parameters' grids."""
    n = 1
    for p in parameters:
        n *= len(p.grid())
    return n


def restrict_all(
    current: Sequence[Parameter], original: Sequence[Parameter], top_params: Sequence[dict[str, Any]], margin: float
) -> list[Parameter]:
    """The next refine round's parameters from the top-k configurations (each ``{path: value}``)."""
    by_path = {p.path: p for p in original}
    return [p.restrict([t[p.path] for t in top_params if p.path in t], margin, by_path.get(p.path)) for p in current]
