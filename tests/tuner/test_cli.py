"""The command line: exit status, one-line problems, and the commands end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_sweep
from tests.tuner.fake_run import epochs, make_run
from tuner.cli import main
from tuner.ray.search import sample
from tuner.spec import load_sweep


def tuner(*args: str, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_validate_ok(write_sweep: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(write_sweep())]) == 0
    assert (
        "ok: mlp (built-in trainer) on synthetic, random search over train.lr, train.momentum"
        in capsys.readouterr().out
    )


def test_bad_sweep_exits_2_with_one_line_a_problem_and_no_traceback(
    write_sweep: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_sweep(tiny_sweep(**{"train.epochs": 0, "train.lr": -1}))
    for command in (
        ["validate", str(path)],
        ["run", str(path), "--storage", str(tmp_path / "runs")],
        ["space", str(path), "-n", "2"],
    ):
        proc = tuner(*command, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines == [
            f"{path}: train.epochs: 0 must lie in [1, 100000]",
            f"{path}: train.lr: -1.0 must lie in (0, 1000000]",
        ]
        assert proc.stdout == ""
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run"], "tuner run: the following arguments are required: sweep"),
        (["space", "x.yaml"], "tuner space: the following arguments are required: -n"),
        (["space", "x.yaml", "-n", "zero"], "tuner space: argument -n: 'zero' is not an integer"),
        (["space", "x.yaml", "-n", "0"], "tuner space: argument -n: 0 must be >= 1"),
        (["export", "r", "--format", "xml"], "tuner export: argument --format: invalid choice: 'xml'"),
        (["frobnicate"], "tuner: argument COMMAND: invalid choice: 'frobnicate'"),
        (["run", "x.yaml", "--bogus"], "tuner: unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err


def test_missing_sweep_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nope.yaml'}: no such file"
    assert not (tmp_path / "runs").exists()


def test_space_prints_n_json_lines_without_starting_ray(write_sweep: Callable[..., Path]) -> None:
    path = write_sweep()
    code = (
        "import sys, ray; from tuner.cli import main; rc = main(sys.argv[1:]); "
        "assert not ray.is_initialized(), 'ray started'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "space", str(path), "-n", "5", "--seed", "3"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    configs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert configs == list(sample(load_sweep(path).search.parameters, "random", 5, 3))
    assert all(set(c) == {"train.lr", "train.momentum"} for c in configs)


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7)), ({"train.lr": 0.2}, epochs(0.4))])
    assert main(["export", str(run_dir), "-o", str(tmp_path / "e.json"), "--top-k", "1"]) == 0
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["score"] == 0.7 and len(data["top"]) == 1
    assert f"exported: {tmp_path / 'e.json'}" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nowhere'}: no such run directory"


@pytest.mark.usefixtures("ray_session")
def test_run_in_process_with_overrides(
    write_sweep: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_sweep()
    assert main(["run", str(path), "--storage", str(tmp_path / "runs"), "--name", "renamed", "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "renamed"
    assert f"run directory: {run_dir}" in out and f"exported best config: {run_dir / 'best.yaml'}" in out
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text())["search"]["num_samples"] == 2
    assert len(list((run_dir / "round-0").glob("run_trial_*"))) == 2


def test_run_as_a_command_end_to_end(write_sweep: Callable[..., Path], tmp_path: Path) -> None:
    """`python -m tuner run` in a fresh process: its own local Ray instance, exit 0, the export."""
    path = write_sweep(tiny_sweep(**{"search.num_samples": 2, "scheduler.name": "none"}))
    proc = tuner("run", str(path), "--storage", str(tmp_path / "runs"), "--num-cpus", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "best val_acc" in proc.stdout and "Traceback" not in proc.stderr
    export = yaml.safe_load((tmp_path / "runs" / "tiny" / "best.yaml").read_text())
    assert set(export["params"]) == {"train.lr", "train.momentum"}


def test_resume_help_says_a_run_directory_holds_pickled_state(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["resume", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "holds pickled state" in out and "trusted source" in out
