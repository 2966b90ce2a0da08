"""What was run and what came out: the summary table."""

from __future__ import annotations

from pathlib import Path

from tests.tuner.report.runs import all_diverged_run, mixed_run
from tuner.report import tables
from tuner.report.context import Context
from tuner.results import load_run


def summary(run_dir: Path) -> str:
    return tables.summary(Context.of(load_run(run_dir), None, run_dir / "report"))


def test_no_finite_score_no_best_and_no_budget_no_full_budget(tmp_path: Path) -> None:
    text = summary(all_diverged_run(tmp_path))
    assert "<td>best score</td><td>none: no trial reported a finite val_loss (nothing to export)</td>" in text
    assert "inf" not in text and "best params" not in text and "best&#x27;s metrics" not in text
    assert "<td>epochs trained</td><td>6 (no full budget: the sweep states no max_t)</td>" in text
    assert "full budget of 0" not in text


def test_a_stated_budget_is_the_full_budget(tmp_path: Path) -> None:
    text = summary(mixed_run(tmp_path))
    assert "<td>epochs trained</td><td>14 of a full budget of 24 (6 × 4): 58%</td>" in text
    assert "<td>best score</td><td>0.9 (trial abcde_00004" in text


def test_the_page_of_a_run_whose_every_trial_diverged_says_why_each_figure_is_missing(tmp_path: Path) -> None:
    from tuner.report import write_report

    text = write_report(all_diverged_run(tmp_path)).read_text()
    assert "No trial reported a finite val_loss: no best so far to draw." in text
    assert "carry no clock times" not in text  # the timeline on the same page draws those clock times
    assert 'data-file="timeline.png"' in text
    assert "none: no trial reported a finite val_loss" in text


def test_without_clock_times_the_progress_says_so(tmp_path: Path) -> None:
    from tuner.report import write_report

    text = write_report(all_diverged_run(tmp_path, clock=False)).read_text()
    assert "The reports carry no clock times: no progress over time." in text


def test_a_failed_trial_shows_its_error_and_ranks_after_the_others(tmp_path: Path) -> None:
    """A trial stopped as hung after one good report: its row of the top table says why it
    failed, below the trial that did not fail, which is the best."""
    from tests.tuner.fake_run import epochs, make_run

    hung = "no report within 8 s (trial_timeout): stopped as hung"
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.9)), ({"train.lr": 0.2}, epochs(0.5))], error_for={0})
    (next((run_dir / "round-0").glob("*_00000_*")) / "timed-out.txt").write_text(hung + "\n")
    ctx = Context.of(load_run(run_dir), None, run_dir / "report")
    top = tables.top(ctx)
    assert f"<td>error: {hung}</td>" in top and top.index("abcde_00001") < top.index("abcde_00000")
    assert "<td>best score</td><td>0.5 (trial abcde_00001" in tables.summary(ctx)
