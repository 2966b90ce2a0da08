"""Where is the good region: the score against each parameter at each rung's epoch, and the
lr × (1 − β) map; checked through their data and the matplotlib objects they draw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tuner.report.runs import function_run, mixed_run
from tuner.report import region
from tuner.report.axes import axis
from tuner.report.context import Context
from tuner.report.figure import best_label
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def collection(ax: Any, label: str) -> Any:
    found = [c for c in ax.collections if c.get_label() == label]
    assert len(found) == 1, [c.get_label() for c in ax.collections]
    return found[0]


def test_points_are_scores_at_the_epoch_with_the_best_marked(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    lr = axis(ctx.params["train.lr"])
    at1 = {p.trial: p for p in region.points(ctx, lr, 1)}
    assert at1["abcde_00000"].y == 0.5 and at1["abcde_00000"].x == 0.05  # epoch 1's score, lr itself
    assert at1["abcde_00004"].best and sum(p.best for p in at1.values()) == 1
    at2 = {p.trial: p for p in region.points(ctx, lr, 2)}
    assert at2["abcde_00002"].diverged and at2["abcde_00002"].y == 0.0
    assert set(at2) == {"abcde_00000", "abcde_00002", "abcde_00003", "abcde_00004"}
    hidden = axis(ctx.params["model.hidden"])
    cols = {p.trial: p.x for p in region.points(ctx, hidden, 1)}
    assert all(abs(cols[t] - 1.5) <= 0.3 for t in ("abcde_00000", "abcde_00003"))  # [16]: the second column
    assert all(abs(cols[t] - 0.5) <= 0.3 for t in ("abcde_00001", "abcde_00002"))


def test_the_grid_has_a_row_per_rung_and_a_column_per_parameter_on_its_scale(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    budgets = region.grid_budgets(ctx)
    assert budgets == [1, 2, 4]
    fig = region.draw_grid(ctx, [axis(p) for p in ctx.params.values()], budgets)
    grid = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_xscale() for ax in grid[-1]] == ["log", "linear", "linear"]
    assert [ax.get_xlabel() for ax in grid[-1]] == [
        "train.lr (log10)",
        "train.momentum (log10(1 − β))",
        "model.hidden (values)",
    ]
    assert [grid[r, 0].get_ylabel() for r in range(3)] == [f"val_acc\nat epoch {e}" for e in (1, 2, 4)]
    assert "0.9" in [t.get_text() for t in grid[-1, 1].get_xticklabels()]  # β itself labels the 1 − β axis
    assert [t.get_text() for t in grid[-1, 2].get_xticklabels()] == ["[8]", "[16]"]
    # row epoch 1, column lr: each status its own marker group, the best ringed at its epoch-1 score
    ax = grid[0, 0]
    stopped = collection(ax, "stopped early (ASHA)").get_offsets()
    assert sorted(map(tuple, stopped.tolist())) == [(0.002, 0.3), (0.08, 0.55)]
    best = collection(ax, best_label("abcde_00004")).get_offsets()
    assert best.tolist() == [[0.03, 0.6]]
    assert collection(grid[2, 0], best_label("abcde_00004")).get_offsets().tolist() == [[0.03, 0.9]]
    # epoch 2: the diverged trial sits below every finite score, with its own marker group
    ax = grid[1, 0]
    (x, y) = collection(ax, "diverged").get_offsets().tolist()[0]
    assert x == 0.4 and y < 0.4 and ax.get_ylim()[0] < y
    # a categorical column has a median bar per value
    medians = [line for line in grid[0, 2].lines if line.get_label() == "median"]
    assert sorted(line.get_ydata()[0] for line in medians) == [0.3, 0.5]  # [8]: 0.2, 0.3, 0.55; [16]: 0.4, 0.5, 0.6


def test_the_map_is_lr_against_one_minus_beta_coloured_by_score(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    lr, beta = ctx.lr_and_beta()  # type: ignore[misc]
    fig = region.draw_map(ctx, axis(lr), axis(beta), 2)
    ax = fig.axes[0]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "linear")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("train.lr (log10)", "train.momentum (log10(1 − β))")
    trials = collection(ax, "trial (colour: score)")
    xy = sorted(map(tuple, trials.get_offsets().tolist()))
    assert xy[0] == (0.01, pytest.approx(np.log10(0.3)))  # trial 3: lr 0.01, β 0.7 at 1 − β = 0.3
    assert sorted(trials.get_array().tolist()) == [0.5, 0.7, 0.75]  # their epoch-2 scores
    assert collection(ax, "diverged").get_offsets().tolist() == [[0.4, pytest.approx(np.log10(0.02))]]
    assert collection(ax, best_label("abcde_00004")).get_offsets().tolist() == [[0.03, pytest.approx(np.log10(0.15))]]
    assert "epoch 2" in fig.axes[1].get_ylabel()  # the colour bar names the budget


def test_a_users_function_gets_the_grid_and_a_line_for_the_map(tmp_path: Path) -> None:
    ctx = context(function_run(tmp_path))
    drawn, notes = region.figures(ctx)
    assert [d.name for d in drawn] == ["region.png"]
    assert len(notes) == 1 and notes[0].startswith("No learning rate × (1 − β) map")
    grid = drawn[0].figure.axes
    assert grid[0].get_xlabel() == "" and grid[-2].get_xlabel() == "optim.lr (log10)"
    assert grid[0].get_ylabel() == "val_rmse\nat epoch 1"


def test_nothing_scored_or_searched_says_so(tmp_path: Path) -> None:
    from tests.conftest import tiny_sweep
    from tests.tuner.report.runs import write_run

    ctx = context(write_run(tmp_path, []))
    assert region.figures(ctx) == ([], ["No trial has reported a score yet."])
    ctx = context(
        write_run(tmp_path / "n", [({}, [{"epoch": 1, "val_acc": 0.5}])], tiny_sweep(**{"search.parameters": {}}))
    )
    assert region.figures(ctx)[1] == ["Nothing was searched: no figure of the good region."]


def test_integer_and_uniform_parameters_get_their_own_scales(tmp_path: Path) -> None:
    from tests.conftest import tiny_sweep
    from tests.tuner.fake_run import epochs
    from tests.tuner.report.runs import write_run

    params = {
        "train.batch_size": {"distribution": "int_log_uniform", "min": 16, "max": 256},
        "train.weight_decay": {"distribution": "uniform", "min": 0.0, "max": 0.01},
    }
    trials = [
        ({"train.batch_size": b, "train.weight_decay": w}, epochs(a, a + 0.1))
        for b, w, a in ((16, 0.001, 0.5), (64, 0.005, 0.6), (256, 0.009, 0.4))
    ]
    run_dir = write_run(tmp_path, trials, tiny_sweep(**{"train.epochs": 2, "search.parameters": params}))
    ctx = context(run_dir)
    (drawn,), notes = region.figures(ctx)
    batch, wd = drawn.figure.axes[-2:]
    assert (batch.get_xscale(), wd.get_xscale()) == ("log", "linear")
    assert (batch.get_xlabel(), wd.get_xlabel()) == ("train.batch_size (log10)", "train.weight_decay (linear)")
    assert {16.0, 64.0, 256.0} <= {x for x, _ in batch.collections[0].get_offsets().tolist()}
    assert batch.get_xlim()[0] < 16 and batch.get_xlim()[1] > 256
    assert notes[0].startswith("No learning rate")


def test_the_grid_has_a_row_for_every_budget_a_trial_reached_even_one_trial(tmp_path: Path) -> None:
    from tests.conftest import tiny_sweep
    from tests.tuner.fake_run import epochs
    from tests.tuner.report.runs import write_run

    sweep = tiny_sweep(**{"train.epochs": 4})
    ctx = context(write_run(tmp_path, [({"train.lr": 0.05, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7, 0.8))], sweep))
    assert ctx.budgets == [1, 2, 4]
    assert region.grid_budgets(ctx) == [1, 2, 4]  # not epoch 1 alone: the best trial ended at 4


def test_more_budgets_than_rows_keep_the_first_the_best_trials_and_the_last(tmp_path: Path) -> None:
    from tests.conftest import tiny_sweep
    from tests.tuner.fake_run import epochs
    from tests.tuner.report.runs import write_run

    sweep = tiny_sweep(**{"train.epochs": 32})
    trials = [
        ({"train.lr": 0.05, "train.momentum": 0.9}, epochs(*[0.9] * 4)),  # the best, stopped at epoch 4
        ({"train.lr": 0.01, "train.momentum": 0.8}, epochs(*[0.5] * 32)),
    ]
    ctx = context(write_run(tmp_path, trials, sweep))
    assert ctx.budgets == [1, 2, 4, 8, 16, 32] and ctx.best is not None and ctx.best.epochs == 4
    assert region.grid_budgets(ctx) == [1, 4, 16, 32]


def test_the_title_and_legend_of_a_one_parameter_grid_are_not_cropped(tmp_path: Path) -> None:
    import io

    import matplotlib.image

    from tests.conftest import tiny_sweep
    from tests.tuner.fake_run import epochs
    from tests.tuner.report.runs import write_run
    from tuner.report import figure

    sweep = tiny_sweep(
        **{
            "train.epochs": 2,
            "search.parameters": {"train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 0.5}},
        }
    )
    trials = [
        ({"train.lr": 0.05}, epochs(0.5, 0.6)),
        ({"train.lr": 0.01}, epochs(0.4)),
        ({"train.lr": 0.3}, epochs(0.2, diverged_at=2)),
    ]
    ctx = context(write_run(tmp_path, trials, sweep))
    fig = region.draw_grid(ctx, [axis(p) for p in ctx.params.values()], region.grid_budgets(ctx))
    png = figure.render(fig)
    title = fig.get_suptitle()
    extent = fig._suptitle.get_window_extent()  # type: ignore[union-attr]
    assert "\n" in title and 0 <= extent.x0 and extent.x1 <= fig.bbox.width  # wrapped to the figure's width
    h, w = matplotlib.image.imread(io.BytesIO(png)).shape[:2]
    whole = fig.get_tightbbox()  # everything drawn, the legend included
    assert w >= whole.width * figure.DPI - 1 and h >= whole.height * figure.DPI - 1


def test_the_grid_title_says_what_it_shows_without_a_budget_or_a_best(tmp_path: Path) -> None:
    from tests.tuner.report.runs import all_diverged_run

    ctx = context(all_diverged_run(tmp_path))
    fig = region.draw_grid(ctx, [axis(p) for p in ctx.params.values()], region.grid_budgets(ctx))
    title = " ".join(fig.get_suptitle().split())
    assert "(the last report); no best: no finite score" in title and "ringed" not in title
