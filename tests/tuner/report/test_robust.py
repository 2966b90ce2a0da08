"""The report against a damaged or hostile run directory: a planted ``report`` link, a trial
with thousands of epochs, scores near the largest double."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.tuner.fake_run import epochs
from tests.tuner.records.test_run import CountingRow
from tests.tuner.report.runs import mixed_run, write_run
from tuner.cli import main
from tuner.errors import InputError
from tuner.records import REPORT_DIR
from tuner.report import asha, progress, timeline, write_report
from tuner.report.context import Context
from tuner.report.figure import edges
from tuner.results import load_run

# -- a planted link ---------------------------------------------------------------------------


def test_a_report_link_in_the_run_directory_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = write_run(tmp_path, [({"train.lr": 0.01}, epochs(0.5, 0.6))])
    victim = tmp_path / "victim"
    victim.mkdir()
    (run_dir / REPORT_DIR).symlink_to(victim)
    with pytest.raises(InputError, match=r"report: is a symbolic link"):
        write_report(run_dir)
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert str(run_dir / REPORT_DIR) in err and "symbolic link" in err and len(err.strip().splitlines()) == 1
    assert list(victim.iterdir()) == []


def test_a_link_to_a_file_named_report_is_refused_too(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [({"train.lr": 0.01}, epochs(0.5))])
    (run_dir / REPORT_DIR).symlink_to(tmp_path / "nowhere")  # dangling
    with pytest.raises(InputError, match="symbolic link"):
        write_report(run_dir)
    assert not (tmp_path / "nowhere").exists()


def test_an_output_the_user_names_may_be_a_link(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [({"train.lr": 0.01}, epochs(0.5, 0.6))])
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "out").symlink_to(target)
    assert main(["report", str(run_dir), "-o", str(tmp_path / "out")]) == 0
    assert (target / "index.html").is_file()


def test_a_link_inside_the_report_folder_is_replaced_never_followed(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, [({"train.lr": 0.01}, epochs(0.5, 0.6))])
    victim = tmp_path / "victim.html"
    victim.write_text("mine")
    (run_dir / REPORT_DIR).mkdir()
    (run_dir / REPORT_DIR / "index.html").symlink_to(victim)
    page = write_report(run_dir)
    assert victim.read_text() == "mine"
    assert not page.is_symlink() and "<html" in page.read_text()


# -- a long history ---------------------------------------------------------------------------


def test_the_figures_of_a_long_trial_read_its_history_a_bounded_number_of_times(tmp_path: Path) -> None:
    n = 1500
    accs = [0.5 + 0.4 * e / n for e in range(1, n + 1)]
    sweep: dict[str, Any] = {"train.epochs": n}
    from tests.conftest import tiny_sweep

    run_dir = write_run(
        tmp_path, [({"train.lr": 0.01}, epochs(*accs)), ({"train.lr": 0.1}, epochs(0.4))], tiny_sweep(**sweep)
    )
    ctx = Context.of(load_run(run_dir), None, tmp_path / "out")
    for t in ctx.run.trials:
        t.history = [CountingRow(h) for h in t.history]
    CountingRow.reads = 0
    asha.draw_curves(ctx)
    progress.progress(ctx, timeline.timeline(ctx))
    assert CountingRow.reads <= 50 * n  # a scan per epoch read n * n rows each time: millions


# -- scores near the largest double -----------------------------------------------------------


def _huge_run(tmp_path: Path, *values: float) -> Path:
    rows = [{"epoch": e, "val_acc": v, "diverged": False} for e, v in enumerate(values, start=1)]
    return _with_trial(mixed_run(tmp_path), rows)


def _with_trial(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    import json

    trial = sorted(run_dir.glob("round-0/run_trial_*"))[0]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.mark.parametrize("values", [(1e308, -1e308), (1e308,), (-1e308, 1e308, 5e307), (1e200, 0.5)])
def test_huge_finite_scores_render_every_figure_without_a_warning(tmp_path: Path, values: tuple[float, ...]) -> None:
    run_dir = _huge_run(tmp_path, *values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's overflow RuntimeWarnings reached the console
        page = write_report(run_dir)
    names = {p.name for p in page.parent.glob("*.png")}
    assert {"asha.png", "curves.png", "region.png", "lr_beta.png", "progress.png"} <= names


def test_huge_scores_through_the_cli_exit_0(tmp_path: Path) -> None:
    run_dir = _huge_run(tmp_path, 1e308, -1e308)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["report", str(run_dir), "-o", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("values", [[1e308, -1e308], [1e308], [-1e308], [1.7e308, 1.7e308]])
def test_edges_are_finite_distinct_and_within_reach(values: list[float]) -> None:
    for mode in ("max", "min"):
        lo, hi, bad = edges(values, mode)
        assert all(math.isfinite(x) for x in (lo, hi, bad))
        assert lo < hi and max(abs(lo), abs(hi)) <= 1e300  # matplotlib overflows on spans near the largest double


def test_edges_of_ordinary_scores_are_as_before() -> None:
    assert edges([0.5, 0.9], "max") == pytest.approx((0.5 - 0.064, 0.9 + 0.064, 0.5 - 0.032))
    assert edges([0.5], "min") == pytest.approx((0.4, 0.6, 0.55))
