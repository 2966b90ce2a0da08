"""A searched parameter as a figure's axis, on the parameter's own scale.

Every axis comes from :class:`tuner.space.Parameter`: its label (:meth:`~Parameter.axis_label`),
its scale and its ticks (:meth:`~Parameter.ticks`, labelled in the parameter's own units). A
log-uniform parameter is drawn on a log axis (matplotlib's and plotly's own, so zooming keeps
its ticks); one whose scale no plotting library has (``log10(1 − β)``) and a list of values
are drawn at their latent coordinate (:meth:`~Parameter.to_latent`) on a linear axis with
ticks naming the values.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

from tuner.space import LINEAR, LOG, Parameter

# Half the width a categorical value's points spread over (its cell is 1 wide).
JITTER = 0.3


@dataclass(frozen=True)
class Axis:
    """How one parameter is drawn: ``kind`` is the plotting library's axis type (``log`` or
    ``linear``), positions and ticks are in that axis's data units."""

    parameter: Parameter
    kind: str
    low: float
    high: float
    ticks: tuple[tuple[float, str], ...]

    @property
    def label(self) -> str:
        return self.parameter.axis_label()

    @property
    def latent(self) -> bool:
        """True when positions are latent coordinates (1 − β, a categorical's index)."""
        return not (self.parameter.scale in (LINEAR, LOG) and not self.parameter.categorical)

    def position(self, value: Any) -> float | None:
        """Where ``value`` sits on the axis (None: not a value of this parameter)."""
        try:
            z = self.parameter.to_latent(value)
            return z if self.latent else float(value)
        except (ValueError, TypeError, OverflowError):
            return None

    def jitter(self, key: str) -> float:
        """A small, repeatable horizontal offset for a point of a categorical parameter, so that
        points of one value do not hide each other (0 for a numeric one)."""
        if not self.parameter.categorical:
            return 0.0
        return (zlib.crc32(key.encode()) % 1001 / 1000 - 0.5) * 2 * JITTER

    def apply(self, ax: Any, which: str = "x") -> None:
        """Set a matplotlib axes' ``which`` axis: scale, limits, ticks and label."""
        set_scale, set_lim, set_ticks, set_label = (
            (ax.set_xscale, ax.set_xlim, ax.set_xticks, ax.set_xlabel)
            if which == "x"
            else (ax.set_yscale, ax.set_ylim, ax.set_yticks, ax.set_ylabel)
        )
        set_scale(self.kind)
        set_lim(self.low, self.high)
        labels = [t for _, t in self.ticks]
        set_ticks([p for p, _ in self.ticks], labels, minor=False)
        if which == "x" and sum(len(t) for t in labels) > 24:  # long values ([256, 256, 256]): slanted
            ax.tick_params(axis="x", labelrotation=25)
            for t in ax.get_xticklabels():
                t.set_horizontalalignment("right")
        if self.kind == "log":  # the Parameter's ticks only: no 10^k labels among them
            set_ticks([], minor=True)
        set_label(self.label)

    def plotly(self) -> dict[str, Any]:
        """The same axis as a plotly layout axis (``range`` of a log axis is in log10 units)."""
        if self.kind == "log":
            # plotly takes a log axis' range as exponents; the Parameter's latent bounds are exactly those
            lo, hi = self.parameter.latent_bounds()
            rng = [lo - PAD * (hi - lo), hi + PAD * (hi - lo)]
        else:
            rng = [self.low, self.high]
        return {
            "type": self.kind,
            "range": rng,
            "tickvals": [p for p, _ in self.ticks],
            "ticktext": [t for _, t in self.ticks],
            "title": {"text": self.label},
        }


# A numeric axis reaches this fraction of its range past each bound, so edge points show whole.
PAD = 0.03


def axis(p: Parameter, n: int = 5) -> Axis:
    """The axis of ``p`` over its whole range, about ``n`` ticks."""
    lo, hi = p.latent_bounds()
    ticks = p.ticks(lo, hi, n)
    if p.categorical:
        return Axis(p, "linear", lo, hi, tuple(ticks))
    lo, hi = lo - PAD * (hi - lo), hi + PAD * (hi - lo)
    if p.scale not in (LINEAR, LOG):
        return Axis(p, "linear", lo, hi, tuple(ticks))
    kind = "log" if p.scale is LOG else "linear"
    # a log or linear axis takes the values themselves: ticks and bounds mapped back from latent
    values = tuple((p.scale.inverse(z), label) for z, label in ticks)
    return Axis(p, kind, p.scale.inverse(lo), p.scale.inverse(hi), values)
