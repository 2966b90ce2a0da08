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


def test_trial_speed_quick_compares_the_loops(tmp_path: Path) -> None:
    record = run_one("trial_speed", quick=True, out=tmp_path, quiet=True)
    (row,) = record["figures"]["results"].values()
    assert set(row) == {"bare", "trainer", "trainer+ckpt"}
    assert row["bare"]["ratio_to_bare"] == 1.0
    assert all(r["samples_per_s"] > 0 and len(r["epoch_s"]) == 3 for r in row.values())
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
