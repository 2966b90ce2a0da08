"""The Python API mirrors the command line; an export re-creates its best trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import tuner
from tests.conftest import tiny_sweep
from tuner.errors import InputError

pytestmark = pytest.mark.usefixtures("ray_session")


def test_api_round_trip_and_an_export_re_creates_the_best_trial(tmp_path: Path) -> None:
    raw = tiny_sweep(**{"scheduler.name": "none", "search.num_samples": 3})
    summary = tuner.run(raw, storage=tmp_path, name="api", quiet=True)
    assert summary.run_dir == tmp_path / "api" and len(summary.run.trials) == 3
    best = tuner.load_best(summary.export_path)
    assert best.score == summary.run.ranked()[0].score("val_acc")
    again = tuner.export(summary.run_dir, tmp_path / "b.json", top_k=1)
    assert len(tuner.load_best(again).top) == 1
    # `tuner run` of the export itself: its config, nothing searched, same seed -> the same trial
    rerun = tuner.run(summary.export_path, storage=tmp_path, name="rerun", quiet=True)
    (trial,) = rerun.run.trials
    original = summary.run.ranked()[0]
    assert trial.params == {}
    assert [h["val_acc"] for h in trial.history] == [h["val_acc"] for h in original.history]
    assert [h["train_loss"] for h in trial.history] == pytest.approx([h["train_loss"] for h in original.history])
    # the export's config loads back into the spec without loss
    cfg = yaml.safe_load(summary.export_path.read_text())["config"]
    assert tuner.load_sweep(summary.export_path).to_dict() == cfg


def test_api_errors_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        tuner.run(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match=r"train.epochs: 0 must lie in \[1, 100000\]"):
        tuner.run(tiny_sweep(**{"train.epochs": 0}), storage=tmp_path)
    assert not any(tmp_path.iterdir())


def test_export_provenance_names_the_git_commit_data_versions_and_times(tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    sweep = repo / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep(**{"scheduler.name": "none", "search.num_samples": 1})))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "s.yaml"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "s"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    summary = tuner.run(sweep, storage=tmp_path / "runs", quiet=True)
    prov = tuner.load_best(summary.export_path).provenance
    import hashlib

    assert prov["git_commit"] == head
    assert prov["sweep_sha256"] == hashlib.sha256(sweep.read_bytes()).hexdigest()
    assert prov["data"]["shapes"]["x_train"][1:] == [8] and prov["data"]["dtype"] == "float32"
    assert len(prov["data"]["sha256"]) == 64
    assert set(prov["versions"]) == {"python", "torch", "ray", "numpy", "tuner"}
    assert prov["run_created"] and prov["run_finished"] and prov["created"]
    assert prov["run_dir"] == str(summary.run_dir)
    sweep.write_text(sweep.read_text() + "# edited\n")
    summary = tuner.run(sweep, storage=tmp_path / "runs", quiet=True)
    assert tuner.load_best(summary.export_path).provenance["git_commit"] == head + "+dirty"
