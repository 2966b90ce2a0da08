"""Each parameter's axis comes from its Parameter: label, scale, ticks in its own units."""

from __future__ import annotations

import math

import pytest
from matplotlib.figure import Figure

from tuner.report.axes import axis
from tuner.space import Parameter

LR = Parameter("train.lr", "log_uniform", 1e-4, 1.0)  # four decades: a tick a decade
BETA = Parameter("train.momentum", "one_minus_log_uniform", 0.9, 0.999)
WD = Parameter("train.wd", "uniform", 0.0, 0.5)
BATCH = Parameter("train.batch_size", values=(32, 64, 128))


def test_a_log_uniform_parameter_is_on_a_log_axis_of_its_values() -> None:
    a = axis(LR)
    assert a.kind == "log" and not a.latent and a.label == "train.lr (log10)"
    assert a.position(0.01) == 0.01
    assert [t for _, t in a.ticks] == ["0.0001", "0.001", "0.01", "0.1", "1"]
    assert [p for p, _ in a.ticks] == pytest.approx([0.0001, 0.001, 0.01, 0.1, 1.0])
    assert a.low < 1e-4 and a.high > 1.0  # padded, so edge points show whole
    ax = Figure().subplots()
    a.apply(ax)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "train.lr (log10)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.0001", "0.001", "0.01", "0.1", "1"]
    assert ax.get_xticks(minor=True).size == 0
    layout = a.plotly()
    assert layout["type"] == "log" and layout["range"][0] < -4 < 0 < layout["range"][1]  # plotly: exponents
    assert layout["ticktext"] == ["0.0001", "0.001", "0.01", "0.1", "1"]


def test_one_minus_beta_is_at_its_latent_coordinate_labelled_in_beta() -> None:
    a = axis(BETA)
    assert a.kind == "linear" and a.latent and a.label == "train.momentum (log10(1 − β))"
    assert a.position(0.99) == pytest.approx(-2.0)  # log10(1 - 0.99), by Parameter.to_latent
    labels = dict((round(p, 6), t) for p, t in a.ticks)
    assert labels[-1.0] == "0.9" and labels[-2.0] == "0.99" and labels[-3.0] == "0.999"
    ax = Figure().subplots()
    a.apply(ax, "y")
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == a.label
    assert "0.99" in [t.get_text() for t in ax.get_yticklabels()]


def test_a_list_of_values_is_a_column_per_value_with_repeatable_jitter() -> None:
    a = axis(BATCH)
    assert a.kind == "linear" and a.label == "train.batch_size (values)"
    assert a.ticks == ((0.5, "32"), (1.5, "64"), (2.5, "128"))
    assert (a.low, a.high) == (0.0, 3.0)
    assert a.position(64) == 1.5 and a.position(100) is None
    j = a.jitter("abcde_00001")
    assert j == a.jitter("abcde_00001") and abs(j) <= 0.3
    assert len({a.jitter(f"abcde_{i:05d}") for i in range(20)}) > 10
    assert axis(LR).jitter("x") == 0.0


def test_a_uniform_parameter_is_linear_and_a_bad_value_has_no_position() -> None:
    a = axis(WD)
    assert a.kind == "linear" and not a.latent and a.position(0.25) == 0.25
    assert axis(LR).position(-1.0) is None and axis(LR).position("x") is None
    assert math.isclose(a.ticks[0][0], 0.0) and a.ticks[-1][1] == "0.5"
