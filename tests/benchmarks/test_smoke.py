"""Smoke test of the benchmarks: the cheap ones at their --quick size, and the entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS
from benchmarks.__main__ import run_one
from tests.conftest import ROOT


@pytest.mark.usefixtures("ray_session")
def test_quickstart_quick_writes_its_figures(tmp_path: Path) -> None:
    record = run_one("quickstart", quick=True, out=tmp_path, quiet=True)
    saved = json.loads((tmp_path / "quickstart.json").read_text())
    assert saved["figures"] == json.loads(json.dumps(record["figures"]))
    assert saved["command"] == "python -m benchmarks quickstart --quick"
    assert saved["machine"]["cpus"] >= 1 and len(saved["machine"]["load_avg"]) == 3
    f = saved["figures"]
    assert f["trials"] == 6 and f["full_budget_epochs"] == 6 * 4 and 6 <= f["epochs"] <= 24
    # the retrained best configuration is the search trial's very model (same seed, same batches)
    assert f["test"]["val_acc"] == pytest.approx(f["best"]["val_acc"], abs=1e-9)
    assert 0.0 <= f["test"]["test_acc"] <= 1.0
    assert (tmp_path / "quickstart.png").stat().st_size > 1000


@pytest.mark.usefixtures("ray_session")
def test_bn_rungs_quick_curves_are_the_trials_own_scores(tmp_path: Path) -> None:
    f = run_one("bn_rungs", quick=True, out=tmp_path, quiet=True)["figures"]
    # one training validated both ways gives exactly what a tuner trial with train.precise_bn reports
    (real,) = f["real_sweeps"]
    assert real["precise_bn"] == 2 and real["max_gap_to_curves"] == 0.0
    assert 4 <= real["epochs"] <= 12 and real["full_epochs"] == 12
    assert set(f["rank_correlation"]) == {"0", "2"} and set(f["rank_correlation"]["2"]) == {1, 2}
    assert {(r["grace_period"], r["precise_bn"]) for r in f["replays"]} == {(1, 0), (1, 2), (2, 0), (2, 2)}
    assert all(1.0 <= r["epochs_ratio"] <= 3.0 for r in f["replays"])  # at most 3 of 3 epochs skipped
    assert f["retests"] == [] and f["summary"]["2"]["epochs_ratio"][0] == 12 / real["epochs"]
    assert not (tmp_path / "bn_rungs-curves.json").exists()  # quick runs never leave curves to reuse
    assert (tmp_path / "bn_rungs.png").stat().st_size > 1000


def test_trial_speed_quick_compares_the_loops(tmp_path: Path) -> None:
    record = run_one("trial_speed", quick=True, out=tmp_path, quiet=True)
    figures = record["figures"]
    (row,) = figures["results"].values()
    assert set(row) == {"bare", "trainer", "trainer+ckpt"}
    n = figures["sizes"]["n_train"]
    assert n > 0 and figures["sizes"]["epochs"] == 3
    bare = row["bare"]
    for r in row.values():  # each figure is what its epoch times say (fastest epoch, median epoch)
        assert len(r["epoch_s"]) == 3 and all(s > 0 for s in r["epoch_s"])
        assert r["min_epoch_s"] == min(r["epoch_s"]) and r["median_epoch_s"] == sorted(r["epoch_s"])[1]
        assert r["samples_per_s"] == pytest.approx(n / r["min_epoch_s"])
        assert r["median_samples_per_s"] == pytest.approx(n / r["median_epoch_s"])
        assert r["ratio_to_bare"] == pytest.approx(bare["min_epoch_s"] / r["min_epoch_s"])
        assert r["median_ratio_to_bare"] == pytest.approx(bare["median_epoch_s"] / r["median_epoch_s"])
    # the loops were timed apart: not one epoch time shared by two of them
    assert len({s for r in row.values() for s in r["epoch_s"]}) == 9
    assert (tmp_path / "trial_speed.png").stat().st_size > 1000


def test_every_benchmark_has_a_module_with_run() -> None:
    import importlib

    for name in BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        assert callable(module.run) and "Quick" in (module.__doc__ or ""), name


def test_an_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "nope", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "invalid choice: 'nope'" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_first_epoch_quick_compares_the_optimizers(tmp_path: Path) -> None:
    f = run_one("first_epoch", quick=True, out=tmp_path, quiet=True)["figures"]
    before, now = f["rows"]["torch.optim"], f["rows"]["tuner.models.optim"]
    assert len(before) == len(now) == 1
    # torch.optim's first step imports torch._dynamo; the built-in trainer's optimizers never do
    assert before[0]["dynamo"] is True and now[0]["dynamo"] is False
    assert f["saved_s"] == pytest.approx(f["median_to_first_epoch_s"]["torch.optim"] - now[0]["to_first_epoch_s"])


@pytest.mark.usefixtures("ray_session")
def test_the_sleeping_trials_run_through_tuners_experiment_path(tmp_path: Path) -> None:
    """``driver_scale.ours`` (and ``orchestration.scale`` on it) builds its experiment with
    ``common.round_settings``, as ``checkpoint_cost`` does: this fails when the experiment's
    settings change under them (both benchmarks once broke so, unseen)."""
    from benchmarks import orchestration
    from benchmarks.common import Context

    ctx = Context(name="scale", quick=True, out=tmp_path, scratch=tmp_path / "scratch")
    row = orchestration.scale(ctx, 4, 0.05, 2)
    assert row["trials"] == 4 and row["minimum_s"] == pytest.approx(0.1)
    assert 0 < row["efficiency"] < 1 and row["wall_s"] > 0.1
    rows = sorted((tmp_path / "scratch" / "scale").glob("*/*/result.json"))
    assert len(rows) == 4  # every trial ran, and reported when it began and ended
    first = [json.loads(p.read_text().splitlines()[0]) for p in rows]
    assert all(r["reported"] - r["began"] >= 0.05 for r in first)


def test_checkpoint_cost_matches_each_call_to_its_trial_whatever_keys_the_searcher_adds(tmp_path: Path) -> None:
    from benchmarks.checkpoint_cost import per_epoch_loss
    from tuner.records import ROUND_KEY

    searched = {"train.lr": 0.1, "train.momentum": 0.9}
    log = tmp_path / "calls.jsonl"
    calls = [  # a worker's first trial is its start-up, not counted
        {"config": searched, "pid": 1, "start": 0.0, "end": 1.0},
        {"config": searched, "pid": 1, "start": 2.0, "end": 2.5},
    ]
    log.write_text("".join(json.dumps(c) + "\n" for c in calls))
    rows = [[{"config": {**searched, ROUND_KEY: 0}, "epoch_s": 0.2}, {"config": {}, "epoch_s": 0.2}]]
    loss = per_epoch_loss(log, rows)
    assert loss["trials_counted"] == 1
    assert loss["per_epoch_s"] == pytest.approx((0.5 - 0.4) / 2)
