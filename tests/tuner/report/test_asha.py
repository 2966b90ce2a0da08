"""What ASHA did: trials per rung, promotions, scores at each rung, the learning curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_sweep
from tests.tuner.fake_run import epochs
from tests.tuner.report.runs import mixed_run, write_run
from tuner.report import asha
from tuner.report.context import Context
from tuner.report.figure import best_label
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    return Context.of(load_run(run_dir), None, run_dir / "report")


def test_rungs_count_the_trials_reaching_and_promoted(tmp_path: Path) -> None:
    rs = asha.rungs(context(mixed_run(tmp_path)))
    assert [r.epoch for r in rs] == [1, 2]
    assert [r.reached for r in rs] == [6, 4]
    assert rs[0].promoted == {"abcde_00000", "abcde_00002", "abcde_00003", "abcde_00004"}
    assert rs[1].promoted == {"abcde_00000", "abcde_00004"}
    diverged = [s for s in rs[1].scores if s.diverged]
    assert [s.trial.trial_id for s in diverged] == ["abcde_00002"]


def test_the_rung_figure_shows_counts_and_scores_with_the_best_ringed(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = asha.draw_rungs(ctx, asha.rungs(ctx))
    left, right = fig.axes
    assert [p.get_height() for p in left.containers[0]] == [6, 4]  # reached
    assert [p.get_height() for p in left.containers[1]] == [4, 2]  # promoted
    assert [t.get_text() for t in left.texts] == ["4 of 6", "2 of 4"]
    assert [t.get_text() for t in right.get_xticklabels()] == ["rung 0\nepoch 1", "rung 1\nepoch 2"]
    (best,) = [c for c in right.collections if c.get_label() == best_label("abcde_00004")]
    assert sorted(y for _, y in best.get_offsets().tolist()) == [0.6, 0.75]  # its scores at epochs 1 and 2
    assert [round(x) for x, _ in best.get_offsets().tolist()] == [0, 1]
    (stopped,) = [c for c in right.collections if c.get_label() == "stopped here"]
    assert sorted(y for _, y in stopped.get_offsets().tolist()) == [0.3, 0.5, 0.55]  # 1, 5 at rung 0; 3 at rung 1
    (gone,) = [c for c in right.collections if c.get_label() == "diverged"]
    assert gone.get_offsets().tolist()[0][1] < 0.3


def test_the_curves_highlight_the_best_and_name_the_rungs(tmp_path: Path) -> None:
    ctx = context(mixed_run(tmp_path))
    fig = asha.draw_curves(ctx)
    ax = fig.axes[0]
    (best,) = [line for line in ax.lines if line.get_label() == best_label("abcde_00004")]
    assert list(best.get_xdata()) == [1, 2, 3, 4] and list(best.get_ydata()) == [0.6, 0.75, 0.8, 0.9]
    assert best.get_linewidth() > 2
    top = [a for a in fig.axes[0].child_axes]
    assert [t.get_text() for t in top[0].get_xticklabels()] == ["rung 0", "rung 1"]
    rung_lines = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert sorted(line.get_xdata()[0] for line in rung_lines) == [1, 2]
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_xdata() == 2 and crosses[0].get_ydata() < 0.2
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "stopped early (ASHA) (2)" in legend and "diverged (1)" in legend and "ASHA rung" in legend
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val_acc"


def test_without_asha_there_are_no_rungs_but_curves(tmp_path: Path) -> None:
    run_dir = write_run(
        tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6))], tiny_sweep(**{"train.epochs": 2, "scheduler.name": "none"})
    )
    rs, drawn = asha.figures(context(run_dir))
    assert rs == [] and [d.name for d in drawn] == ["curves.png"]
    assert pytest.approx(0.6) == drawn[0].figure.axes[0].lines[-1].get_ydata()[-1]


def bracketed_run(tmp_path: Path) -> Path:
    """The mixed run under ASHA with two brackets, and ASHA's rung records: bracket 0 judged
    trials 0, 1, 2 and 5 at epoch 1 and 0, 2 at epoch 2; bracket 1 (first rung at epoch 2)
    judged 3 and 4 at epoch 2 only (never at epoch 1, though they reported it)."""
    import json

    import yaml

    run_dir = mixed_run(tmp_path)
    sweep = yaml.safe_load((run_dir / "sweep.yaml").read_text())
    sweep["scheduler"]["brackets"] = 2
    (run_dir / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))

    def rec(*ids: int) -> dict[str, float]:
        return {f"abcde_{i:05d}": 0.5 for i in ids}

    records = {
        "brackets": [
            [
                {"milestone": 4.0, "recorded": rec(0)},
                {"milestone": 2.0, "recorded": rec(0, 2)},
                {"milestone": 1.0, "recorded": rec(0, 1, 2, 5)},
            ],
            [{"milestone": 4.0, "recorded": rec(4)}, {"milestone": 2.0, "recorded": rec(3, 4)}],
        ],
        "trial_bracket": {},
    }
    (run_dir / "round-0" / "asha-rungs.json").write_text(json.dumps(records))
    return run_dir


def test_rungs_count_the_trials_asha_recorded_in_each_bracket(tmp_path: Path) -> None:
    rs = asha.rungs(context(bracketed_run(tmp_path)))
    assert [r.epoch for r in rs] == [1, 2]
    assert sorted(s.trial.trial_id for s in rs[0].scores) == [f"abcde_{i:05d}" for i in (0, 1, 2, 5)]
    assert rs[0].promoted == {"abcde_00000", "abcde_00002"}
    assert rs[0].brackets == [(0, 2, 4)]
    assert rs[1].reached == 4 and rs[1].promoted == {"abcde_00000", "abcde_00004"}
    assert rs[1].brackets == [(0, 1, 2), (1, 1, 2)]
    fig = asha.draw_rungs(context(bracketed_run(tmp_path / "again")), rs)
    assert [t.get_text() for t in fig.axes[0].texts] == ["2 of 4", "2 of 4"]


def test_the_asha_text_names_the_brackets_and_counts_from_the_records(tmp_path: Path) -> None:
    from tuner.report import write_report

    text = write_report(bracketed_run(tmp_path)).read_text()
    assert "ASHA (grace 1, reduction 2, max 4 epochs, 2 brackets)" in text
    assert "rung records: epoch 1: 2 of 4 promoted; " in text  # bracket 1 never judged at epoch 1
    assert "epoch 2: 2 of 4 promoted (bracket 0: 1 of 2, bracket 1: 1 of 2)." in text


def test_without_rung_records_the_histories_are_the_estimate_and_one_bracket_is_not_named(tmp_path: Path) -> None:
    from tuner.report import write_report

    text = write_report(mixed_run(tmp_path)).read_text()
    assert "ASHA (grace 1, reduction 2, max 4 epochs)" in text
    assert "no rung records" in text and "epoch 1: 4 of 6 promoted; epoch 2: 2 of 4 promoted." in text


def test_a_malformed_rung_record_is_one_line_naming_the_file_and_key(tmp_path: Path) -> None:
    from tuner.errors import InputError

    run_dir = mixed_run(tmp_path)
    (run_dir / "round-0" / "asha-rungs.json").write_text('{"brackets": [[{"milestone": "a", "recorded": [1]}]]}')
    with pytest.raises(InputError, match=r"asha-rungs.json: brackets\[0\]\[0\].milestone: must be a number"):
        asha.rungs(context(run_dir))
