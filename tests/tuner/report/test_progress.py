"""How the search progressed: best so far against wall time and epochs, and random search's
full-budget estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs
from tests.tuner.report.runs import mixed_run, write_run
from tuner.report import progress, timeline
from tuner.report.context import Context
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_best_so_far_steps_up_in_time_and_epochs(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    pr = progress.progress(ctx, timeline.timeline(ctx))
    assert pr.spent == 14  # every epoch every trial reported
    values = [v for _, v in pr.epochs]
    assert values == sorted(values) and values[-1] == 0.9  # the best any trial reported
    assert values[0] == 0.5  # the first report: trial 0's epoch 1 (it starts first)
    times = [t for t, _ in pr.wall]
    assert times == sorted(times) and times[0] == pytest.approx(5.3 + 1.0, abs=1.0)
    assert pr.epochs[-1][0] == 14 and pr.wall[-1][1] == 0.9


def test_random_search_estimate_is_the_expected_best_of_k_full_budget_trials(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path,
        [({"train.lr": lr}, epochs(*[v] * 2)) for lr, v in ((0.1, 0.3), (0.01, 0.2), (0.001, 0.1))],
        tiny_sweep(**{"train.epochs": 2, "scheduler.name": "none"}),
    )
    est = progress.random_equivalent(context(run_dir))
    # best of 1 of {0.3, 0.2, 0.1}: the mean; best of 2: (0.3·2 + 0.2·1)/3; best of 3: 0.3
    assert [e for e, _ in est] == [2, 4, 6]
    assert [v for _, v in est] == pytest.approx([0.2, 0.8 / 3, 0.3])


def test_a_minimised_metric_steps_down_and_the_figure_draws_both_panels(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path,
        [({"train.lr": 0.1}, epochs(0.5, 0.7)), ({"train.lr": 0.01}, epochs(0.6, 0.65))],
        tiny_sweep(**{"train.epochs": 2, "metric": "val_loss", "mode": "min"}),
    )
    ctx = context(run_dir)
    pr = progress.progress(ctx, timeline.timeline(ctx))
    values = [v for _, v in pr.epochs]
    assert values == sorted(values, reverse=True) and values[-1] == pytest.approx(0.3)
    fig = progress.draw(ctx, pr)
    left, right = fig.axes
    assert left.get_xlabel() == "seconds since the run was created" and left.get_xlim()[0] == 0
    assert right.get_xlabel() == "epochs spent (all trials)"
    assert left.get_ylabel().startswith("best val_loss so far")
    (best,) = [line for line in right.lines if line.get_label() == "best so far"]
    assert list(best.get_ydata()) == pytest.approx(values)
    (rand,) = [line for line in right.lines if line.get_label().startswith("random search")]
    assert list(rand.get_xdata()) == [2, 4]
    (spent,) = [line for line in right.lines if line.get_label().startswith("epochs this run spent")]
    assert list(spent.get_xdata()) == [4, 4]


def test_no_clock_times_no_progress(tmp_path: Path) -> None:
    ctx = context(write_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5))], clock=False))
    pr, drawn = progress.figures(ctx, timeline.timeline(ctx))
    assert pr.wall == [] and drawn == []
