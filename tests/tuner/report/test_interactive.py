"""The interactive views: parallel coordinates to brush, zoomable scatters, the map."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuner.report.runs import function_run, mixed_run
from tuner.report import interactive
from tuner.report.context import Context
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_parallel_coordinates_hold_each_parameter_on_its_latent_scale_and_the_score(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = interactive.parallel(ctx)
    (trace,) = fig.data
    assert trace.type == "parcoords"
    dims = trace.dimensions
    assert [d.label for d in dims] == [
        "train.lr (log10)",
        "train.momentum (log10(1 − β))",
        "model.hidden (values)",
        "epochs trained",
        "val_acc at epoch 1",
    ]
    assert list(dims[0].range) == pytest.approx([-3, pytest.approx(-0.30103)])
    assert list(dims[0].values)[0] == pytest.approx(-1.30103, abs=1e-5)  # log10(0.05): trial 0
    assert "0.01" in dims[0].ticktext and list(dims[2].ticktext) == ["[8]", "[16]"]
    assert list(dims[3].values) == [4, 1, 2, 2, 4, 1]
    assert list(dims[4].values) == [0.5, 0.3, 0.2, 0.4, 0.6, 0.55]
    assert list(trace.line.color) == list(dims[4].values)
    assert "brushing" in fig.layout.title.text


def test_scatters_have_a_log_axis_for_lr_and_a_button_per_budget(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = interactive.scatters(ctx)
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text == "train.lr (log10)"
    assert fig.layout.xaxis2.type == "linear" and "0.9" in fig.layout.xaxis2.ticktext
    assert list(fig.layout.xaxis3.ticktext) == ["[8]", "[16]"]
    (menu,) = fig.layout.updatemenus
    assert [b.label for b in menu.buttons] == ["val_acc at epoch 1", "val_acc at epoch 2", "val_acc at epoch 4"]
    assert len(fig.data) == 3 * 3 * 2  # budgets × parameters × (points, best)
    for k, button in enumerate(menu.buttons):
        shown = [t for t, v in zip(fig.data, button.args[0]["visible"]) if v]
        assert len(shown) == 6
        assert shown[1].name == "best trial (abcde_00004)" and list(shown[1].x) == [0.03]
        assert shown[1].y[0] == [0.6, 0.75, 0.9][k]
    visible = [t for t in fig.data if t.visible]
    assert len(visible) == 6 and list(visible[0].x) == [0.05, 0.002, 0.4, 0.01, 0.03, 0.08]  # epoch 1: every trial


def test_the_map_is_zoomable_on_log_axes_and_absent_without_a_beta(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = interactive.lr_map(ctx)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text == "train.momentum (log10(1 − β))"
    (trace,) = fig.data
    assert list(trace.marker.color) == [0.5, 0.3, 0.2, 0.4, 0.6, 0.55]
    assert [w for w in trace.marker.line.width] == [0.5, 0.5, 0.5, 0.5, 3, 0.5]  # the best trial outlined
    assert interactive.lr_map(context(function_run(tmp_path / "f"))) is None


def test_a_div_holds_the_figure_and_plotly_js_is_embedded_not_fetched() -> None:
    import plotly.graph_objects as go

    div = interactive.to_div(go.Figure(go.Scatter(x=[1], y=[2])), "view-x")
    assert 'id="view-x"' in div and "Plotly.newPlot" in div and "<script src" not in div
    js = interactive.plotly_js()
    assert len(js) > 1_000_000 and "plotly" in js[:2000].lower()
