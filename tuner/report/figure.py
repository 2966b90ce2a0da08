"""What the report's static figures share: how a figure is made and rendered to PNG, how each
trial status and the best trial are drawn, and where a non-finite score goes.

Figures are bare matplotlib ``Figure`` objects (no pyplot, no backend switch) so that a test
can read what a figure shows (its axes, scales, labels and marked points) before it is
rendered. A diverged trial's metric is ±inf or the worst value: it is drawn at the worst edge
of the axis with its own marker, never dropped.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from tuner.records import TrialStatus

DPI = 100
# The largest magnitude a figure draws as itself. Matplotlib works out an axis' span, its
# ticks, margins and pixel positions in doubles, which overflow (RuntimeWarnings on the
# console, then "Axis limits cannot be NaN or Inf") for values well below the largest double:
# a finite value beyond this bound is drawn at it, and the figure says so (CLIPPED).
LIMIT = 1e100
CLIPPED = f"values beyond ±{LIMIT:g} are drawn at ±{LIMIT:g}"


@dataclass(frozen=True)
class Style:
    """How trials of one status are drawn: marker, colour (points and curves), legend label."""

    marker: str
    colour: str
    label: str


STYLES: dict[TrialStatus, Style] = {
    TrialStatus.FINISHED: Style("o", "tab:blue", "finished"),
    TrialStatus.STOPPED: Style("v", "tab:gray", "stopped early (ASHA)"),
    TrialStatus.DIVERGED: Style("x", "tab:red", "diverged"),
    TrialStatus.ERROR: Style("D", "black", "failed"),
    TrialStatus.RUNNING: Style("s", "tab:olive", "running"),
}
# The run's best trial: a red ring around its point (its label names the trial).
BEST = {"marker": "o", "s": 260, "facecolors": "none", "edgecolors": "red", "linewidths": 2.0, "zorder": 5}
BEST_COLOUR = "red"


def best_label(trial_id: str) -> str:
    """The legend entry of the best trial; tests find its artist by this label."""
    return f"best trial ({trial_id})"


@dataclass
class Drawn:
    """One static figure of the report: its file name beside the page, the figure, and the
    text an image reader gets."""

    name: str
    figure: Figure
    alt: str

    @cached_property
    def png(self) -> bytes:
        """The figure rendered to PNG (once: the page embeds the same bytes as the file holds)."""
        return render(self.figure)


def new(width: float, height: float) -> Figure:
    """A figure of ``width`` × ``height`` inches with a constrained layout (labels never clipped)."""
    return Figure(figsize=(width, height), layout="constrained")


def render(fig: Figure) -> bytes:
    """``fig`` as PNG bytes: the figure's own size, grown to hold anything drawn past its
    edges (a long title, a wide legend) so that nothing is cropped."""
    fig.draw_without_rendering()  # the layout as saved, so the extent below is the saved one
    whole = fig.get_tightbbox()
    page = fig.bbox_inches
    if whole is not None:  # grown on a side only where something reaches past it, with a margin
        pad = 0.05
        page = Bbox.from_extents(
            whole.x0 - pad if whole.x0 < page.x0 else page.x0,
            whole.y0 - pad if whole.y0 < page.y0 else page.y0,
            whole.x1 + pad if whole.x1 > page.x1 else page.x1,
            whole.y1 + pad if whole.y1 > page.y1 else page.y1,
        )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches=page)
    return buf.getvalue()


def wrapped(text: str, width_in: float, fontsize: float = 10) -> str:
    """``text`` broken into lines that fit a figure ``width_in`` inches wide at ``fontsize``."""
    per_line = max(20, int(width_in * 72 / (fontsize * 0.6)))  # an average character is ~0.6 em wide
    return textwrap.fill(text, per_line)


def clip(v: float) -> float:
    """A finite ``v`` brought within ±:data:`LIMIT` (a non-finite one as it is)."""
    return min(max(v, -LIMIT), LIMIT) if math.isfinite(v) else v


def clipped(values: Iterable[float]) -> bool:
    """True when some finite value of ``values`` is beyond ±:data:`LIMIT` (drawn at it)."""
    return any(math.isfinite(v) and abs(v) > LIMIT for v in values)


def edges(values: Sequence[float], mode: str) -> tuple[float, float, float]:
    """Limits of a score axis around the finite ``values`` (each within ±:data:`LIMIT`, so
    the span and its padding stay finite), and where a non-finite (worst) value is drawn:
    just past the worst end."""
    finite = [clip(v) for v in values if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    if lo - pad == lo or hi + pad == hi:  # one value so large that 0.05 is lost in it: limits would be equal
        pad = max(abs(lo), abs(hi)) * 0.08
    bad = lo - pad if mode == "max" else hi + pad
    return lo - 2 * pad, hi + 2 * pad, bad


def placed(v: float, bad: float) -> float:
    """``v`` itself when finite (within ±:data:`LIMIT`), else the worst edge ``bad``."""
    return clip(v) if math.isfinite(v) else bad


def note(ax: Any, text: str) -> None:
    """A one-line note inside the top of an axes (why a panel is empty, what it assumes)."""
    ax.text(0.5, 0.97, text, transform=ax.transAxes, ha="center", va="top", fontsize=8, color="0.3", wrap=True)


def legend_outside(fig: Figure, *axes: Any) -> None:
    """One legend for ``axes`` below them (each label once), so it never covers points."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(4, len(seen)), fontsize=8)
