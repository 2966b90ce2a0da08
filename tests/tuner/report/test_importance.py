"""Which parameters matter: Optuna's fANOVA and PED-ANOVA at a common budget."""

from __future__ import annotations

from pathlib import Path

from tests.tuner.report.runs import lr_matters_run, mixed_run
from tuner.report import importance
from tuner.report.context import Context
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_importance_is_computed_at_a_common_budget_not_on_last_scores(tmp_path: Path) -> None:
    """In this run the learning rate sets every score at a given epoch, while momentum decides
    which trials go on to epoch 4 (and gain there): last scores would make momentum matter."""
    ctx = context(lr_matters_run(tmp_path))
    imp = importance.importance(ctx)
    assert imp.reason == "" and imp.epoch == 4 and imp.n == len(ctx.scores_at(4))
    assert max(imp.fanova, key=imp.fanova.get) == "train.lr" and imp.fanova["train.lr"] > 0.5  # type: ignore[arg-type]
    assert max(imp.ped_anova, key=imp.ped_anova.get) == "train.lr"  # type: ignore[arg-type]
    assert abs(sum(imp.fanova.values()) - 1) < 1e-6 and abs(sum(imp.ped_anova.values()) - 1) < 1e-6
    # the figure: a pair of bars per parameter, the most important on top, labelled with its scale
    fig = importance.draw(ctx, imp)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "train.lr (log10)" and set(labels) == {
        "train.lr (log10)",
        "train.momentum (log10(1 − β))",
        "model.hidden (values)",
    }
    fanova_bars = [b for b in ax.patches if b.get_facecolor()[:3] == ax.patches[0].get_facecolor()[:3]][:3]
    assert [round(b.get_width(), 6) for b in fanova_bars] == [
        round(imp.fanova[k], 6) for k in sorted(imp.fanova, key=imp.fanova.get)
    ]  # type: ignore[arg-type]
    assert "epoch 4" in ax.get_title() and ax.get_xlim() == (0, 1)


def test_too_few_trials_is_one_line(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    imp, drawn = importance.figures(ctx)
    assert drawn == [] and imp.reason == "too few trials at val_acc at epoch 1 (6; 8 needed)"
