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
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temporary or lock file


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


# -- exporting again over a retested export -----------------------------------------------------


def _retested(run_dir: Path, trials: list[str], params: list[dict[str, float]]) -> Path:
    from tests.tuner.fake_run import retest_section
    from tuner.results import load_run

    e = export.build(load_run(run_dir))
    e.retest = retest_section(trials, params)
    return export.write(e, run_dir / "best.yaml")  # as a retest writes it: strict, checked


def test_exporting_again_keeps_the_retest_of_the_same_configuration(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = {"train.lr": 0.1, "train.momentum": 0.9}
    second = {"train.lr": 0.2, "train.momentum": 0.95}
    path = _retested(run_dir, ["abcde_00001", "abcde_00000"], [second, best])  # the search's second first now
    before = yaml.safe_load(path.read_text())
    assert export.export_run(run_dir) == path
    after = yaml.safe_load(path.read_text())
    assert after["retest"] == before["retest"]
    assert after["params"] == second and [t["params"] for t in after["top"][:2]] == [second, best]
    assert all("retest" in t for t in after["top"][:2])
    assert capsys.readouterr().err == ""


def test_a_resumed_run_ending_again_keeps_the_retest_of_its_export(run_dir: Path) -> None:
    """The export a run writes as it ends (``runner.finish``: a resume of a run whose export
    was retested) goes through the same rule as ``tuner export``."""
    import time

    from tuner.records import RunStatus
    from tuner.results import load_run
    from tuner.runner import finish
    from tuner.storage import RunStore

    best = {"train.lr": 0.1, "train.momentum": 0.9}
    path = _retested(run_dir, ["abcde_00000"], [best])
    before = yaml.safe_load(path.read_text())
    meta = load_run(run_dir).meta
    meta.status = RunStatus.RUNNING
    assert finish(RunStore.open(run_dir), meta, time.monotonic()).export_path == path
    assert yaml.safe_load(path.read_text())["retest"] == before["retest"]


def test_exporting_a_new_best_over_a_retest_of_another_configuration_says_so(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _retested(run_dir, ["abcde_00001"], [{"train.lr": 0.2, "train.momentum": 0.95}])  # not the run's best
    export.export_run(run_dir)
    after = yaml.safe_load(path.read_text())
    assert "retest" not in after and after["params"] == {"train.lr": 0.1, "train.momentum": 0.9}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"warning: {path}: its retest results (and best.retest.jsonl beside it) were for another configuration "
        "than the one exported now; the new export holds no retest (retest it again)"
    ]


# -- a run directory that is damaged, read-only or whose driver is gone --------------------------


def _best_folder(run_dir: Path) -> Path:
    (folder,) = (run_dir / "round-0").glob("run_trial_abcde_00000_*")
    return folder


def _damage(folder: Path, how: str) -> None:
    import os

    if how == "params_missing":  # and no report holds the config
        (folder / "params.json").unlink()
        (folder / "result.json").write_text("")
    elif how == "params_garbage":
        (folder / "params.json").write_bytes(b"\x00\xff garbage")
        (folder / "result.json").write_text("")
    elif how == "result_garbage":
        (folder / "result.json").write_bytes(bytes(range(256)) * 2)
    elif how == "result_empty":  # though the trial saved a checkpoint: it reported
        (folder / "result.json").write_text("")
        (folder / "checkpoint_000000").mkdir()
    elif how == "result_folder":
        (folder / "result.json").unlink()
        (folder / "result.json").mkdir()
    elif how == "result_fifo":
        (folder / "result.json").unlink()
        os.mkfifo(folder / "result.json")


DAMAGE = {
    "params_missing": "no params.json (and no report holds the trial's config)",
    "params_garbage": "params.json is not a JSON object of parameters",
    "result_garbage": "result.json: none of its",
    "result_empty": "result.json is empty, though the trial saved a checkpoint",
    "result_folder": "result.json is not a regular file",
    "result_fifo": "result.json is not a regular file",
}


@pytest.mark.parametrize("how", list(DAMAGE))
def test_an_unreadable_best_trial_is_said_not_silently_replaced_by_the_second(
    run_dir: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _best_folder(run_dir)
    _damage(folder, how)
    path = export.export_run(run_dir)  # the best readable trial, exit 0
    assert yaml.safe_load(path.read_text())["score"] == 0.4
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"warning: {run_dir}: 1 trial folder could not be read and is left out (the run's best may be among them); "
        f"the first: {folder}: {DAMAGE[how]}"
    )


def test_a_missing_params_json_is_taken_from_the_reports(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (_best_folder(run_dir) / "params.json").unlink()  # each report holds the trial's config
    assert yaml.safe_load(export.export_run(run_dir).read_text())["score"] == 0.7
    assert capsys.readouterr().err == ""


def test_a_read_only_run_directory_is_refused_before_the_export_is_built(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    real = os.access  # root writes anywhere: the system's answer is replaced
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != run_dir and real(p, mode, **kw))
    monkeypatch.setattr(export, "build", lambda *a, **k: pytest.fail("built before the target was checked"))
    with pytest.raises(InputError) as e:
        export.export_run(run_dir)
    assert e.value.problems == [
        f"RUN_DIR: {run_dir / 'best.yaml'}: no permission to write in {run_dir}; export elsewhere with -o FILE"
    ]
    assert not (run_dir / "best.yaml").exists()


def test_a_run_whose_driver_is_gone_is_exported_with_a_warning(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "status": "running"}))
    for state, warned in (("unknown", False), ("running", False), ("gone", True)):
        monkeypatch.setattr(export, "driver_state", lambda d, state=state: state)
        assert yaml.safe_load(export.export_run(run_dir).read_text())["score"] == 0.7
        err = capsys.readouterr().err.strip().splitlines()
        assert err == (
            [
                f"warning: {run_dir}: the run is unfinished (run.json says running, but its driver is not running: "
                f"it was killed?): exporting the trials that reported; continue it with tuner resume {run_dir}"
            ]
            if warned
            else []
        )


@pytest.mark.parametrize("name", ["run.json", "sweep.yaml", "round-0/asha-rungs.json"])
def test_export_never_overwrites_a_file_of_the_run_it_reads(run_dir: Path, name: str) -> None:
    """The library refuses what the command line refuses: ``-o`` onto a file of RUN_DIR."""
    import tuner

    target = run_dir / name
    target.parent.mkdir(exist_ok=True)
    if not target.exists():
        target.write_text("{}")
    before = target.read_bytes()
    for call in (lambda: export.export_run(run_dir, target), lambda: tuner.export(run_dir, output=target)):
        with pytest.raises(InputError) as e:
            call()
        assert e.value.problems == [
            f"-o: {target}: would overwrite a file of {run_dir}, which this command reads; write elsewhere"
        ]
    assert target.read_bytes() == before and not (run_dir / "best.yaml").exists()
    assert export.export_run(run_dir, run_dir / "other.yaml").is_file()  # a new file beside them is fine


def test_export_checks_its_arguments_before_anything(run_dir: Path, tmp_path: Path) -> None:
    for top_k, message in ((2.5, "--top-k: 2.5 is not an integer"), ("3", "--top-k: '3' is not an integer")):
        with pytest.raises(InputError) as e:
            export.export_run(run_dir, tmp_path / "x.yaml", top_k=top_k)  # type: ignore[arg-type]
        assert e.value.problems == [message]
    with pytest.raises(InputError, match="--format: 'xml' is not one of yaml, json"):
        export.export_run(run_dir, tmp_path / "x.yaml", fmt="xml")
    assert not (tmp_path / "x.yaml").exists()


def test_a_run_whose_every_trial_is_unreadable_says_so_before_nothing_to_export(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in (run_dir / "round-0").glob("run_trial_*"):
        (folder / "result.json").write_text("")
        (folder / "checkpoint_000000").mkdir()
    with pytest.raises(InputError, match="no trial has reported val_acc yet; nothing to export"):
        export.export_run(run_dir)
    err = capsys.readouterr().err
    assert err.startswith(f"warning: {run_dir}: 3 trial folders could not be read") and err.count("\n") == 1


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_sweep_or_export_file_is_read_and_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """``export_file.load_sweep`` reads the file to tell an export from a sweep and check it, and
    hands what it read to the sweep's reader (which had read and parsed it a second time); a
    JSON file is read as JSON."""
    import tuner.files
    import tuner.spec
    from tests.conftest import tiny_sweep

    reads: list[str] = []
    real = tuner.files.read_bytes

    def counted(path: object, *args: object, **kwargs: object) -> bytes:
        reads.append(str(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(export, "read_bytes", counted)
    monkeypatch.setattr(tuner.spec, "read_bytes", counted)
    raw = tiny_sweep(name="once", **{"train.lr": 1e-3})
    path = tmp_path / f"sweep{suffix}"
    path.write_text(json.dumps(raw) if suffix == ".json" else yaml.safe_dump(raw))
    sweep = export.load_sweep(path, {"search.num_samples": 3})
    assert reads == [str(path)]
    assert sweep.name == "once" and sweep.search.num_samples == 3


def test_a_failed_trial_is_exported_last_with_its_error_and_as_best_only_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial stopped as hung after one good report ranks after the trials that did not
    fail; its top entry carries its error, and the export loads back."""
    hung = "no report within 8 s (trial_timeout): stopped as hung"
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.9)),  # stopped as hung after one good epoch
            ({"train.lr": 0.2, "train.momentum": 0.9}, epochs(0.5, 0.6, 0.7)),
        ],
        error_for={0},
    )
    (next((run_dir / "round-0").glob("*_00000_*")) / "timed-out.txt").write_text(hung + "\n")
    path = export.export_run(run_dir)
    data = yaml.safe_load(path.read_text())
    assert data["score"] == 0.7 and data["params"]["train.lr"] == 0.2
    assert [(t["status"], t.get("error")) for t in data["top"]] == [("finished", None), ("error", hung)]
    assert export.load(path)[0].top[1].error == hung
    assert "warning" not in capsys.readouterr().err
    only = make_run(tmp_path / "only", [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(0.9))], error_for={0})
    data = yaml.safe_load(export.export_run(only).read_text())
    assert data["top"][0]["error"] == "RuntimeError: boom"
    assert "every trial with a finite val_acc failed; the best exported, trial abcde_00000, failed too" in (
        capsys.readouterr().err
    )
