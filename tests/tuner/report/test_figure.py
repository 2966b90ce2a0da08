"""What the static figures share: PNG rendering, the worst edge, one legend for many axes."""

from __future__ import annotations

import io
import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from tuner.report import figure


def test_render_draws_the_figure_itself() -> None:
    """A PNG of what was drawn: white where nothing is, the line where it is (a filled
    rectangle in its place fails)."""
    fig = Figure(figsize=(2.0, 2.0))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.plot([0.5, 0.5], [0, 1], color="red", lw=8)
    pixels = matplotlib.image.imread(io.BytesIO(figure.render(fig)))[..., :3]
    assert pixels.shape[:2] == (200, 200)  # 2 inches at figure.DPI
    assert np.allclose(pixels[100, 20], 1.0)  # white left of the line
    assert np.allclose(pixels[100, 100], [1.0, 0.0, 0.0], atol=0.05)  # red on it


@pytest.mark.parametrize(
    "mode, values, bad_side",
    [("max", [0.2, 0.8, -math.inf], "below"), ("min", [0.2, 0.8, math.inf], "above")],
)
def test_a_non_finite_score_goes_just_past_the_worst_end(mode: str, values: list[float], bad_side: str) -> None:
    lo, hi, bad = figure.edges(values, mode)
    assert lo < bad < 0.2 if bad_side == "below" else 0.8 < bad < hi
    assert figure.placed(values[-1], bad) == bad and figure.placed(0.5, bad) == 0.5
    assert figure.edges([], mode)[:2] == (pytest.approx(-0.16), pytest.approx(1.16))


def test_one_legend_below_for_many_axes_each_label_once() -> None:
    fig = figure.new(4.0, 3.0)
    a, b = fig.subplots(1, 2)
    a.plot([0, 1], label="best so far")
    b.plot([0, 1], label="best so far")
    b.plot([1, 0], label="random search")
    figure.legend_outside(fig, a, b)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["best so far", "random search"]
