"""Does the best hold up: the export's latest retest, its figure and table."""

from __future__ import annotations

from pathlib import Path

from tests.tuner.fake_run import retest_section, write_export
from tests.tuner.report.runs import mixed_run
from tuner import export_file
from tuner.records import EXPORT_FILE
from tuner.report import retest
from tuner.report.context import Context
from tuner.report.figure import Drawn
from tuner.results import load_run


def context(run_dir: Path) -> Context:
    export = export_file.read(run_dir / EXPORT_FILE) if (run_dir / EXPORT_FILE).is_file() else None
    return Context.of(load_run(run_dir), export, run_dir / "report")


def test_the_figure_plots_validation_and_test_and_says_so_on_its_axis(tmp_path: Path) -> None:
    run_dir = mixed_run(tmp_path)
    write_export(run_dir, retest_section(["abcde_00004", "abcde_00000"], [{"train.lr": 0.03}, {"train.lr": 0.05}]))
    ctx = context(run_dir)
    entry = retest.latest(ctx.export, run_dir / EXPORT_FILE)
    assert entry is not None
    bars, test_name = retest.bars(ctx, entry)
    assert test_name == "test_acc" and [b.search for b in bars] == [0.9, 0.85]
    assert bars[0].val is not None and round(bars[0].val[0], 6) == 0.8
    assert bars[0].test is not None and round(bars[0].test[0], 6) == 0.79
    fig = retest.draw("val_acc", test_name, bars)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "val_acc (validation) and test_acc (test)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(labels) == [
        "search: val_acc, one seed",
        "test: test_acc, fresh seeds",
        "validation: val_acc, fresh seeds",
    ]
    stars = [line for line in ax.lines if line.get_marker() == "*"]
    assert [float(s.get_ydata()[0]) for s in stars] == [0.9, 0.85]
    means = sorted(round(float(c.lines[0].get_ydata()[0]), 6) for c in ax.containers)
    assert means == [0.74, 0.75, 0.79, 0.8]
    parts = retest.section(ctx, entry)
    assert any(isinstance(x, Drawn) and x.name == "retest.png" for x in parts)
    text = "".join(x for x in parts if isinstance(x, str))
    assert "3 seeds" in text and "ranking unchanged" in text and "0.8 ± 0.02 [0.77, 0.83]" in text
    assert "the best configuration held its rank" in text


def test_without_an_export_or_a_retest_one_line_says_so(tmp_path: Path) -> None:
    run_dir = mixed_run(tmp_path)
    assert retest.section(context(run_dir), None)[0].startswith("<p>No retest yet: there is no export (best.yaml)")
    write_export(run_dir)
    ctx = context(run_dir)
    assert retest.latest(ctx.export, run_dir / EXPORT_FILE) is None
    assert retest.section(ctx, None)[0].startswith("<p>No retest yet (tuner retest ")
