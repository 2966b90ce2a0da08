"""A run in a notebook: trials as DataFrames, short reprs, the end summary of ``tuner.run``, and
a trained model loaded for inference."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import tuner
from tests.tuner.fake_run import epochs, make_run
from tuner.cli import main
from tuner.errors import InputError
from tuner.frames import trials_frame
from tuner.results import load_run
from tuner.runner import RunSummary

TRIALS = [
    ({"train.lr": 0.05, "train.momentum": 0.9, "model.hidden": [16, 16]}, epochs(0.5, 0.6, 0.7)),
    ({"train.lr": 0.2, "train.momentum": 0.5, "model.hidden": [8]}, epochs(0.4)),
    ({"train.lr": 0.3, "train.momentum": 0.6, "model.hidden": [8]}, epochs(0.3, 0.2)),
    ({"train.lr": 0.01, "train.momentum": 0.7, "model.hidden": [16, 16]}, epochs(0.45, 0.75, 0.8)),
]


# The searched parameters of TRIALS (an export takes only a sweep's searched parameters)
SEARCHED = {
    "train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 0.5},
    "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99},
    "model.hidden": {"values": [[8], [16, 16]]},
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, TRIALS, epochs=3, error_for={2}, overrides={"search.parameters": SEARCHED})


def test_one_row_per_trial_best_first(run_dir: Path) -> None:
    frame = tuner.load_run(run_dir)
    assert list(frame["trial_id"]) == ["abcde_00003", "abcde_00000", "abcde_00001", "abcde_00002"]
    assert list(frame["score"]) == [0.8, 0.7, 0.4, 0.2] and list(frame["epochs"]) == [3, 3, 1, 2]
    assert list(frame["status"]) == ["finished", "finished", "stopped", "error"]
    assert list(frame["error"].isna()) == [True, True, True, False] and frame["error"].iloc[3] == "RuntimeError: boom"
    assert list(frame.columns[:7]) == ["trial_id", "round", "status", "epochs", "score", "node_id", "error"]
    assert {"train.lr", "train.momentum", "model.hidden", "val_acc", "val_loss", "train_loss"} <= set(frame.columns)
    assert frame.attrs == {"metric": "val_acc", "mode": "max", "run_dir": str(run_dir)}
    # a list-valued parameter is a tuple: its column groups like any other
    assert frame["model.hidden"].iloc[0] == (16, 16)
    assert frame.groupby("model.hidden")["score"].max().to_dict() == {(8,): 0.4, (16, 16): 0.8}


def test_one_row_per_epoch(run_dir: Path) -> None:
    frame = tuner.load_run(run_dir, per="epoch")
    assert len(frame) == 3 + 1 + 2 + 3
    assert list(frame[frame["trial_id"] == "abcde_00003"]["epoch"]) == [1, 2, 3]
    assert list(frame[frame["trial_id"] == "abcde_00003"]["val_acc"]) == [0.45, 0.75, 0.8]
    curves = frame.pivot(index="epoch", columns="trial_id", values="val_acc")
    assert curves.shape == (3, 4) and curves["abcde_00001"].isna().sum() == 2
    assert frame["model.hidden"].iloc[0] == (16, 16) and frame.attrs["metric"] == "val_acc"


def test_what_tuner_run_returns_and_an_empty_run(run_dir: Path, tmp_path: Path) -> None:
    summary = RunSummary(run_dir, None, load_run(run_dir), 3.0)
    assert list(trials_frame(summary)["trial_id"]) == list(trials_frame(run_dir)["trial_id"])
    empty = make_run(tmp_path / "empty", [], epochs=3)
    for per, first in (("trial", "score"), ("epoch", "epoch")):
        frame = tuner.load_run(empty, per=per)
        assert frame.empty and first in frame.columns  # columns a notebook can select, even with no trial


def test_bad_input(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"per: 'trials' is not one of trial, epoch"):
        tuner.load_run(run_dir, per="trials")
    with pytest.raises(InputError, match="no such run directory"):
        tuner.load_run(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not a tuner run directory"):
        tuner.load_run(tmp_path)


def test_reprs_are_a_line_without_the_per_epoch_history(run_dir: Path) -> None:
    many = make_run(
        run_dir.parent / "long", [({"train.lr": 0.1, "train.momentum": 0.9}, epochs(*[0.5] * 200))], epochs=200
    )
    run = load_run(many)
    summary = RunSummary(many, many / "best.yaml", run, 12.4)
    for obj, expected in (
        (summary, f"RunSummary({str(many)!r}, 1 trials, best val_acc 0.5, 12s)"),
        (run, f"RunDir({str(many)!r}, done, 1 trials, val_acc max)"),
        (run.trials[0], "TrialRecord('abcde_00000', round 0, finished, 200 epochs, params={'train.lr': 0.1, "),
    ):
        assert repr(obj).startswith(expected) and "\n" not in repr(obj) and len(repr(obj)) < 200


def fake_run_sweep(run_dir: Path) -> Callable[..., RunSummary]:
    def run_sweep(sweep: Any, write: Callable[[str], None] = print, **kwargs: Any) -> RunSummary:
        write("progress")
        return RunSummary(run_dir, None, load_run(run_dir), 3.0)

    return run_sweep


@pytest.mark.parametrize("flag", ["--json", "--quiet", None])
def test_a_cloud_runs_end_says_the_exports_uri_and_names_the_local_copy(
    run_dir: Path,
    write_sweep: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str | None,
) -> None:
    """A run stored at a URI: its export was uploaded beside it. ``--json``'s ``export`` and
    ``--quiet``'s line gave the local mirror's copy as if it were the export."""
    import tuner.runner

    uri = "s3://bucket/runs/tiny"

    def run_sweep(sweep: Any, write: Callable[[str], None] = print, **kwargs: Any) -> RunSummary:
        return RunSummary(run_dir, run_dir / "best.yaml", load_run(run_dir), 3.0, uri)

    monkeypatch.setattr(tuner.runner, "run_sweep", run_sweep)
    monkeypatch.setattr("tuner.storage.check_storage", lambda *a, **k: a[0])  # no store to ask
    assert main(["run", str(write_sweep()), "--storage", "s3://bucket/runs", *([flag] if flag else [])]) == 0
    out = capsys.readouterr().out
    line = f"exported best config: {uri}/best.yaml (local copy: {run_dir / 'best.yaml'})"
    if flag == "--json":
        end = json.loads(out)
        assert end["export"] == f"{uri}/best.yaml" and end["export_local_copy"] == str(run_dir / "best.yaml")
        assert end["run_dir"] == uri
    else:
        assert line in out.splitlines()


def test_tuner_run_prints_the_end_summary_the_cli_prints_unless_quiet(
    run_dir: Path, write_sweep: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tuner.runner

    monkeypatch.setattr(tuner.runner, "run_sweep", fake_run_sweep(run_dir))
    sweep = write_sweep()
    assert main(["run", str(sweep)]) == 0
    cli = capsys.readouterr().out.splitlines()
    summary = tuner.run(sweep)
    api = capsys.readouterr().out.splitlines()
    assert api == cli == ["progress", *summary.lines()]
    assert api[1].startswith("done in 3s: 4 trials") and any("best val_acc 0.8000" in line for line in api)
    tuner.run(sweep, quiet=True)
    assert capsys.readouterr().out == ""
    lines: list[str] = []
    tuner.run(sweep, write=lines.append)
    assert lines == api and capsys.readouterr().out == ""
    assert main(["run", str(sweep), "--json"]) == 0
    out = capsys.readouterr()
    said = json.loads(out.out)
    assert said["best"]["score"] == 0.8 and said["trials"] == {"error": 1, "finished": 2, "stopped": 1}
    assert out.err.splitlines() == ["progress", *summary.lines()]  # the lines for a person on stderr


def test_a_trained_model_in_a_notebook(run_dir: Path, tmp_path: Path) -> None:
    export = tuner.export(run_dir)
    tuner.train(export, tmp_path / "model.pt", device="cpu", write=lambda _: None)
    model, info = tuner.load_model(tmp_path / "model.pt")
    assert not model.training and next(model.parameters()).device.type == "cpu"
    assert info.params == {"train.lr": 0.01, "train.momentum": 0.7, "model.hidden": [16, 16]}
    assert info.input_shape == (8,) and info.num_outputs == 3 and info.task == "classification"
    assert repr(info).startswith("ModelFile(mlp, classification, input (8,), test_loss ") and "test_acc" in repr(info)
    with torch.no_grad():
        probs = model(torch.randn(5, *info.input_shape)).softmax(dim=1)
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(dim=1), torch.ones(5))


def test_a_metric_or_value_named_as_a_column_of_tuners_own_keeps_both(tmp_path: Path) -> None:
    """A function that reports ``score``, ``round``, ``epochs``, ``error`` or ``status`` (a
    classification error is a usual metric) replaced tuner's columns of the same name: the
    frame said round 7 and score 123 for a run of round 0 ranked by val_loss."""
    history = [
        {"epoch": e, "val_loss": 1.0 / e, "score": 123.0, "round": 7, "epochs": 1000, "error": 0.5, "diverged": False}
        for e in (1, 2)
    ]
    run_dir = make_run(
        tmp_path, [({"train.lr": 0.1, "status": 3}, history)], 2, overrides={"metric": "val_loss", "mode": "min"}
    )
    row = tuner.load_run(run_dir).iloc[0]
    assert (row["round"], row["status"], row["epochs"], row["score"]) == (0, "finished", 2, 0.5)
    assert row["error"] is None or row["error"] != row["error"]  # no error: None (or NaN in pandas)
    assert (row["metric.score"], row["metric.round"], row["metric.epochs"], row["metric.error"]) == (
        123.0,
        7,
        1000,
        0.5,
    )
    assert row["param.status"] == 3 and row["train.lr"] == 0.1
    epoch = tuner.load_run(run_dir, per="epoch")
    assert (
        list(epoch["round"]) == [0, 0] and list(epoch["epoch"]) == [1, 2] and list(epoch["status"]) == ["finished"] * 2
    )
    assert list(epoch["metric.round"]) == [7, 7] and list(epoch["val_loss"]) == [1.0, 0.5]
    assert list(epoch["param.status"]) == [3, 3]
