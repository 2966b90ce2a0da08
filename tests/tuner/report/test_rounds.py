"""How refine rounds narrowed the ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tuner.fake_run import epochs
from tests.tuner.report.runs import mixed_run, write_run
from tuner.report import rounds
from tuner.report.context import Context
from tuner.report.figure import Drawn
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_each_round_is_a_bar_on_the_parameters_scale_with_its_trials(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = rounds.draw(ctx)
    lr, beta = fig.axes  # numeric parameters only: model.hidden has no range
    assert (lr.get_xscale(), lr.get_xlabel()) == ("log", "train.lr (log10)")
    assert beta.get_xlabel() == "train.momentum (log10(1 − β))"
    bars = [line for line in lr.lines if line.get_linewidth() == 7]
    assert [(list(b.get_xdata()), b.get_ydata()[0]) for b in bars] == [([0.001, 0.5], 0), ([0.01, 0.1], 1)]
    b1 = [line for line in beta.lines if line.get_linewidth() == 7][1]
    assert list(b1.get_xdata()) == pytest.approx([-0.69897, -1.30103], abs=1e-4)  # 1 − β: 0.2 .. 0.05
    dots = sorted(map(tuple, lr.collections[0].get_offsets().tolist()))
    assert (0.03, 1.0) in dots and (0.05, 0.0) in dots and len(dots) == 6
    assert [t.get_text() for t in lr.get_yticklabels()] == ["round 0", "round 1"]
    parts = rounds.section(ctx)
    text = "".join(x for x in parts if isinstance(x, str))
    assert "2 rounds" in text and any(isinstance(x, Drawn) for x in parts)
    assert "<td>1</td><td>train.momentum</td><td>one_minus_log_uniform</td><td>0.8</td><td>0.95</td><td>2</td>" in text
    assert "<td>model.hidden</td>" not in text


def test_one_round_is_a_table_and_a_line(tmp_path: Path) -> None:
    ctx = context(write_run(tmp_path, [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5))]))
    parts = rounds.section(ctx)
    assert parts[0] == "<p>One round only (no refine rounds): the ranges are the sweep file&#x27;s.</p>\n"
    assert not any(isinstance(x, Drawn) for x in parts)
