from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tuner.export_file as export
from tests.tuner.fake_run import epochs, make_run
from tuner.errors import InputError, RunError
from tuner.spec import from_dict


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(
        tmp_path,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
            ({"train.momentum": 0.95, "train.lr": 0.2}, epochs(0.4)),
            ({"train.lr": 0.5, "train.momentum": 0.5}, epochs(0.3, diverged_at=2)),
        ],
    )


def test_export_holds_the_contract(run_dir: Path) -> None:
    path = export.export_run(run_dir)
    assert path == run_dir / "best.yaml"
    data = yaml.safe_load(path.read_text())
    assert list(data) == ["metric", "mode", "score", "params", "config", "top", "provenance"]
    assert data["metric"] == "val_acc" and data["mode"] == "max" and data["score"] == 0.7
    assert data["params"] == {"train.lr": 0.1, "train.momentum": 0.9}
    assert [t["score"] for t in data["top"]] == [0.7, 0.4, 0.0]
    assert list(data["top"][1]["params"]) == ["train.lr", "train.momentum"]  # the sweep file's order
    assert data["top"][0]["trial"] == "abcde_00000" and data["top"][0]["status"] == "finished"
    assert data["provenance"]["sweep_sha256"] == "ab" * 32 and data["provenance"]["run_dir"] == str(run_dir.resolve())
    assert data["provenance"]["created"]


def test_the_exported_config_is_a_sweep_with_the_params_applied(run_dir: Path) -> None:
    data = yaml.safe_load(export.export_run(run_dir).read_text())
    sweep = from_dict(data["config"], source="best.yaml")  # loads back without loss
    assert sweep.train["lr"] == 0.1 and sweep.train["momentum"] == 0.9
    assert sweep.search.parameters == () and sweep.search.num_samples == 1
    assert from_dict(sweep.to_dict()).to_dict() == sweep.to_dict()


def test_yaml_and_json_hold_the_same_content_and_top_k(run_dir: Path, tmp_path: Path) -> None:
    y = yaml.safe_load(export.export_run(run_dir, tmp_path / "a.yaml", top_k=2).read_text())
    j = json.loads(export.export_run(run_dir, tmp_path / "b.txt", top_k=2, fmt="json").read_text())
    assert len(y["top"]) == 2
    y["provenance"].pop("created"), j["provenance"].pop("created")
    assert y == j
    assert export.export_run(run_dir, fmt="json") == run_dir / "best.json"
    assert export.read(run_dir / "best.json").score == 0.7


def test_exports_get_the_usual_file_permissions(run_dir: Path) -> None:
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = export.export_run(run_dir)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_writes_are_atomic_and_leave_no_temporary_files(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = export.export_run(run_dir)
    before = target.read_text()
    import tuner.files

    monkeypatch.setattr(tuner.files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(RunError, match="disk full"):
        export.export_run(run_dir)
    assert target.read_text() == before  # the old file is intact
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []


def test_export_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--top-k: 0 must be >= 1"):
        export.export_run(run_dir, top_k=0)
    with pytest.raises(InputError, match="--format: 'xml' is not one of yaml, json"):
        export.export_run(run_dir, fmt="xml")
    empty = make_run(tmp_path / "e", [({"train.lr": 0.1}, [])])
    with pytest.raises(InputError, match="no trial has reported val_acc yet"):
        export.export_run(empty)
    assert not (empty / "best.yaml").exists()


def test_load_checks_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        export.load(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("score: [1\n")
    with pytest.raises(InputError, match="bad.yaml:2:1: invalid YAML"):
        export.load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InputError, match="top level must be a mapping"):
        export.load(tmp_path / "list.yaml")
    (tmp_path / "partial.yaml").write_text("metric: val_acc\nmode: max\n")
    with pytest.raises(InputError, match="missing score, params, config"):
        export.load(tmp_path / "partial.yaml")
