"""The report's common budgets: scores at a rung's epoch, not a trial's last score."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.tuner.report.runs import function_run, lr_matters_run, mixed_run
from tuner.errors import InputError
from tuner.report.context import Context
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_budgets_are_the_rungs_then_the_full_budget(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    assert ctx.budgets == [1, 2, 4]  # grace 1, η 2, 4 epochs
    assert ctx.best is not None and ctx.best.trial_id == "abcde_00004"


def test_scores_at_an_epoch_are_that_epochs_and_a_diverged_trial_is_worst(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    at1 = {s.trial.trial_id: (s.value, s.diverged) for s in ctx.scores_at(1)}
    assert at1["abcde_00000"] == (0.5, False)  # its epoch-1 score, not its last (0.85)
    assert at1["abcde_00002"] == (0.2, False)  # diverged later, at epoch 2
    at2 = {s.trial.trial_id: (s.value, s.diverged) for s in ctx.scores_at(2)}
    assert at2["abcde_00002"] == (0.0, True)  # worst accuracy
    assert "abcde_00001" not in at2 and "abcde_00005" not in at2  # stopped at epoch 1
    assert sorted(at2) == ["abcde_00000", "abcde_00002", "abcde_00003", "abcde_00004"]
    last = {s.trial.trial_id: s.value for s in ctx.scores_at(None)}
    assert last["abcde_00000"] == 0.85


def test_a_minimised_metric_counts_a_diverged_trial_at_plus_infinity(tmp_path: Path) -> None:
    ctx = context(function_run(tmp_path))
    assert ctx.metric == "val_rmse" and ctx.mode == "min"
    assert ctx.best is not None and ctx.best.trial_id == "abcde_00000"  # 45, lower than 49
    at2 = {s.trial.trial_id: (s.value, s.diverged) for s in ctx.scores_at(2)}
    assert at2["abcde_00003"] == (math.inf, True)
    assert at2["abcde_00000"] == (50.0, False)
    assert ctx.lr_and_beta() is None  # optim.lr is a learning rate, but no β was searched


def test_the_common_budget_is_the_highest_that_a_quarter_and_enough_trials_reached(tmp_path: Path) -> None:
    ctx = context(lr_matters_run(tmp_path))
    at4 = len(ctx.scores_at(4))
    assert 8 <= at4 < 24 and len(ctx.scores_at(2)) == 24
    assert ctx.budget == 4
    small = context(mixed_run(tmp_path / "small"))
    assert small.budget == 1  # 6 trials at epoch 1, 4 at 2, 2 at 4: fewer than 8 anywhere, so the most
    assert context(function_run(tmp_path / "f")).budget == 1  # 4 at epoch 1, 3 at 3 (one diverged)


def test_lr_and_beta_are_found_by_name_and_scale(tmp_path: Path) -> None:
    lr, beta = context(mixed_run(tmp_path)).lr_and_beta()  # type: ignore[misc]
    assert (lr.path, beta.path) == ("train.lr", "train.momentum")


def test_a_malformed_round_is_one_line_naming_it(tmp_path: Path) -> None:
    run_dir = mixed_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["rounds"][1]["parameters"] = {"train.lr": {"distribution": "log_uniform", "min": 1}}
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"run.json: rounds\[1\].parameters: train.lr: missing max"):
        context(run_dir)


def test_no_trials_no_budget(tmp_path: Path) -> None:
    from tests.tuner.report.runs import write_run

    ctx = context(write_run(tmp_path, []))
    assert ctx.budget is None and ctx.best is None and ctx.scores_at(3) == []


def test_the_best_is_the_trial_the_export_picks_none_without_a_finite_score(tmp_path: Path) -> None:
    from tests.tuner.report.runs import all_diverged_run

    ctx = context(all_diverged_run(tmp_path))
    assert [t.score("val_loss") for t in ctx.run.ranked()] == [math.inf] * 3
    assert ctx.best is None  # the export refuses every one of them: no best
