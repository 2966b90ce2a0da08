"""A user's own training function, end to end on a real local Ray instance: ASHA stops it at
its rungs, refine rounds, a non-finite metric, several metrics kept, a trial process killed
and restored from the function's own state, the export re-run, retest with fresh seeds, what
train/evaluate say, a function that fails, and a project with its own ``models`` run through
Ray's workers (a subprocess: a fresh Ray job that ships the project's folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from tests.conftest import GPUS, ROOT, tiny_function_sweep
from tests.fixtures_data import user_fit, write_user_project
from tuner import datasets
from tuner.cli import main
from tuner.export_file import export_run
from tuner.results import load_run
from tuner.runner import RunSummary, run_sweep
from tuner.spec import from_dict, load_sweep
from tuner.trial import TaskRun, call

pytestmark = pytest.mark.usefixtures("ray_session")

MAX_T = 9  # ASHA (grace 1, η 3) judges at epochs 1, 3 and 9


def function_sweep(log: Path, **overrides: Any) -> dict[str, Any]:
    """A sweep of ``tests.fixtures_data:user_fit`` (macro F1, its own metric) on the tiny
    synthetic set; an ``lr`` above 0.5 reports an infinite loss at epoch 2."""
    raw = tiny_function_sweep(
        "tests.fixtures_data:user_fit",
        name="fn",
        metric="val_f1",
        mode="max",
        config={"epochs": MAX_T, "lr": 0.05, "width": 8, "diverge_above": 0.5, "log": str(log)},
        seed=3,
        search={
            "method": "random",
            "num_samples": 8,
            "seed": 5,
            "parameters": {
                "lr": {"distribution": "log_uniform", "min": 1e-3, "max": 3.0},
                "width": {"values": [4, 16]},
            },
            "refine": {"rounds": 1, "top_k": 3, "num_samples": 3},
        },
        scheduler={"name": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3},
        max_failures=0,
    )
    for key, value in overrides.items():
        raw[key] = value
    return raw


@pytest.fixture(scope="module")
def fn_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One sweep of a user function (ASHA, a refine round) shared by the tests of what it left."""
    root = tmp_path_factory.mktemp("fn")
    log = root / "calls.jsonl"
    path = root / "sweep.yaml"
    path.write_text(yaml.safe_dump(function_sweep(log), sort_keys=False))
    lines: list[str] = []
    summary = run_sweep(load_sweep(path), storage=root / "runs", write=lines.append)
    return {"summary": summary, "root": root, "log": log, "lines": lines}


def test_asha_stops_a_user_function_at_its_rungs(fn_run: dict[str, Any]) -> None:
    summary: RunSummary = fn_run["summary"]
    run = summary.run
    milestones = run.sweep.scheduler.milestones()
    assert milestones == [1, 3, 9]
    by_status: dict[str, list[Any]] = {}
    for t in run.trials:
        by_status.setdefault(t.status.value, []).append(t)
        assert [h["epoch"] for h in t.history] == list(range(1, t.epochs + 1)), t.trial_id
    assert by_status.get("stopped"), "ASHA stopped no trial"
    assert all(t.epochs in milestones and t.epochs < MAX_T for t in by_status["stopped"])
    assert by_status.get("finished") and all(t.epochs == MAX_T for t in by_status["finished"])
    assert len(run.trials) == 8 + 3 and summary.run.meta.status == "done"


def test_a_non_finite_metric_marks_the_trial_diverged_and_the_sweep_goes_on(fn_run: dict[str, Any]) -> None:
    run = fn_run["summary"].run
    diverged = [t for t in run.trials if t.status.value == "diverged"]
    assert diverged, [(t.params, t.status.value) for t in run.trials]
    for t in diverged:
        assert t.params["lr"] > 0.5 and t.epochs == 2 and t.history[-1]["diverged"] is True
        assert t.score("val_f1") == float("-inf")  # the worst, ranked last
    assert all(t.params["lr"] <= 0.5 for t in run.ranked()[:3])
    assert any(t.status.value == "finished" for t in run.trials)


def test_refine_rounds_zoom_in_on_the_functions_parameters(fn_run: dict[str, Any]) -> None:
    run = fn_run["summary"].run
    first, second = run.meta.rounds
    assert first.status == second.status == "done" and first.num_samples == 8 and second.num_samples == 3
    lo, hi = second.parameters["lr"]["min"], second.parameters["lr"]["max"]
    assert 1e-3 <= lo < hi <= 3.0 and (lo, hi) != (1e-3, 3.0)
    refined = [t for t in run.trials if t.round == 1]
    assert len(refined) == 3 and all(lo <= t.params["lr"] <= hi for t in refined)


def test_every_metric_the_function_reports_is_kept_and_exported(fn_run: dict[str, Any]) -> None:
    summary: RunSummary = fn_run["summary"]
    own = {"train_loss", "val_loss", "val_acc", "val_f1"}
    for t in summary.run.trials:
        assert own <= set(t.history[0]), t.history[0]
    assert own <= set(summary.run.metrics())
    export = yaml.safe_load(summary.export_path.read_text())
    assert export["metric"] == "val_f1" and export["config"]["function"] == "tests.fixtures_data:user_fit"
    best = summary.run.ranked()[0]
    assert export["score"] == pytest.approx(best.history[-1]["val_f1"])
    assert export["config"]["config"]["lr"] == pytest.approx(best.params["lr"])
    assert own <= set(export["top"][0].get("metrics", {})), "the export's top entries lack the other metrics"


def test_the_report_shows_every_metric(fn_run: dict[str, Any], tmp_path: Path) -> None:
    from tuner.report import write_report

    page = write_report(fn_run["summary"].run_dir, tmp_path / "report").read_text()
    for metric in ("val_f1", "val_acc", "val_loss", "train_loss"):
        assert f"<th>{metric}</th>" in page, metric  # a column of the top trials


def test_an_export_of_a_function_runs_again_with_the_same_result(fn_run: dict[str, Any], tmp_path: Path) -> None:
    summary: RunSummary = fn_run["summary"]
    export = export_run(summary.run_dir, tmp_path / "best.yaml", top_k=3)
    assert main(["run", str(export), "--storage", str(tmp_path / "again"), "--quiet"]) == 0
    rerun = load_run(tmp_path / "again" / "fn")
    (trial,) = rerun.trials
    best = summary.run.ranked()[0]
    assert trial.status.value == "finished" and trial.epochs == MAX_T
    # the same function, config and run.seed: the very same training
    assert trial.history[-1]["val_f1"] == best.history[-1]["val_f1"]
    assert trial.history[-1]["train_loss"] == pytest.approx(best.history[-1]["train_loss"], rel=1e-9)


def test_retest_gives_a_function_fresh_seeds_and_intervals_for_its_test_metrics(
    fn_run: dict[str, Any], tmp_path: Path
) -> None:
    from tuner.retesting import retest

    summary: RunSummary = fn_run["summary"]
    export = export_run(summary.run_dir, tmp_path / "best.yaml", top_k=2)
    log: Path = fn_run["log"]
    before = len(log.read_text().splitlines())
    entry = retest(export, seeds=2, top_k=2, write=lambda _: None)
    calls = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    assert len(calls) == 4 and sorted({c["seed"] for c in calls}) == sorted(entry.seeds)
    assert 3 not in entry.seeds and len(set(entry.seeds)) == 2  # fresh: not the search's run.seed
    assert {c["trial"] for c in calls} == {f"seed-{s}" for s in entry.seeds}
    for row in entry.results:
        assert row.val.ci95 is not None and len(row.val.scores) == 2
        assert set(row.test) == {"test_f1", "test_acc"}  # what the function reported on the test split
        for stats in row.test.values():
            assert stats.ci95 is not None and stats.ci95[0] <= stats.mean <= stats.ci95[1]
    saved = yaml.safe_load(export.read_text())
    assert saved["retest"]["seeds"] == entry.seeds and "test_f1" in saved["top"][0]["retest"]["test"]


def test_train_and_evaluate_say_in_one_line_that_a_function_export_has_no_model(
    fn_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = fn_run["summary"].export_path
    assert main(["train", str(export), "-o", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tests.fixtures_data:user_fit" in err and "built-in trainer" in err
    assert not (tmp_path / "m.pt").exists()
    assert main(["evaluate", str(export)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(export) in err


def test_a_function_that_fails_fails_the_run_with_its_error_in_one_readable_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two trials, neither with a result: one raises before its first report, one reports
    without the sweep's metric. Exit 1; one line a kind of error, naming the user's frame."""
    raw = function_sweep(tmp_path / "calls.jsonl")
    raw["config"].update(omit="val_f1", epochs=3, raise_at=0)
    raw["search"] = {"method": "grid", "parameters": {"raise_at": {"values": [1, 0]}}}
    raw["scheduler"] = {"name": "none", "max_t": 3}
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(path), "--storage", str(tmp_path / "runs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0] == "tuner: the run failed: no trial produced a result (2 of 2 trials failed)"
    raised = [line for line in lines if "ValueError" in line]
    missing = [line for line in lines if "ReportError" in line]
    assert len(raised) == len(missing) == 1, err
    assert raised[0].strip().startswith("1 trial (")
    line = _line_of('raise ValueError(f"user_fit: bad batch')
    assert raised[0].endswith(f"ValueError: user_fit: bad batch at epoch 1 (in user_fit, at fixtures_data.py:{line})")
    assert (
        "ReportError: run.report: the sweep's metric 'val_f1' is not in the first report "
        "(it reported: train_loss, val_acc, val_loss)" in missing[0]
    )
    assert "(in user_fit, at fixtures_data.py:" in missing[0]  # the user's run.report line
    assert lines[-1].strip().startswith("full logs: ") and lines[-1].strip().endswith("error.txt")
    run = load_run(tmp_path / "runs" / "fn")
    assert run.meta.status == "failed" and {t.status.value for t in run.trials} == {"error"}


def _line_of(text: str) -> int:
    """The line of ``tests/fixtures_data.py`` holding ``text``."""
    lines = (ROOT / "tests" / "fixtures_data.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if text in line)


@pytest.mark.parametrize("gpu", GPUS)
def test_a_killed_trial_process_continues_from_the_functions_saved_state(tmp_path: Path, gpu: int) -> None:
    """The trial's process SIGKILLs itself in epoch 5 (once); Tune restarts the trial
    (``max_failures: 1``) and the function's ``run.restore()`` hands back the state it saved
    at its last checkpoint: it goes on from there, not from epoch 1, and ends exactly where an
    uninterrupted training ends. On a GPU the state comes back on the CPU, so the function's
    CPU ``torch.Generator`` takes its state back."""
    log = tmp_path / "calls.jsonl"
    marker = tmp_path / "killed"
    raw = function_sweep(log)
    raw["config"].update(epochs=6, step_s=0.3, fail={"at": 5, "marker": str(marker), "how": "kill"})
    raw["search"] = {"method": "grid", "parameters": {"lr": {"values": [0.05]}}}
    raw["scheduler"] = {"name": "none", "max_t": 6}
    raw["max_failures"] = 1
    raw["resources"] = {"cpu": 1, "gpu": gpu}
    sweep = from_dict(raw, source=str(tmp_path / "kill.yaml"))
    summary = run_sweep(sweep, storage=tmp_path / "runs", write=lambda _: None)
    assert marker.exists(), "the planned kill did not happen"
    first, second = [json.loads(line) for line in log.read_text().splitlines()]
    assert first["restored"] == 0 and first["pid"] != second["pid"]
    assert 1 <= second["restored"] <= 4, "the restarted trial did not continue from a checkpoint"
    (trial,) = summary.run.trials
    assert trial.status.value == "finished" and [h["epoch"] for h in trial.history] == [1, 2, 3, 4, 5, 6]
    assert {h["device"] for h in trial.history} == {"cuda" if gpu else "cpu"}
    # the same training without the kill, in this process
    config = {**sweep.base_config(), "lr": 0.05, "fail": None, "step_s": 0, "log": None}
    device = torch.device("cuda" if gpu else "cpu")
    plain = TaskRun(
        metric="val_f1", mode="max", seed=sweep.seed, data=datasets.load(sweep).without_test(), device=device
    )
    call(user_fit, config, plain)
    assert trial.history[-1]["val_f1"] == plain.reports[-1]["val_f1"]
    assert trial.history[-1]["train_loss"] == pytest.approx(plain.reports[-1]["train_loss"], rel=1e-6)


@pytest.mark.parametrize(("layout", "marker"), [("module", 1.0)])
def test_a_project_with_its_own_models_runs_on_ray_workers(tmp_path: Path, layout: str, marker: float) -> None:
    """``tuner run`` of a project with its own ``models.py`` beside its sweep file, started
    from another folder (the repository's root, whose ``models/`` folder is tuner's): Ray's
    workers import the project's own models from the job's copy of the project's folder, and
    tuner's from tuner.models. (A ``models/`` package: the same through ``tuner try`` in
    test_local.py, and on Ray's workers of every node in test_multinode.py; ``("package",
    2.0)`` here runs it on a local instance too, at the cost of another Ray start.)"""
    log = tmp_path / "where.jsonl"
    project = tmp_path / "project"
    sweep = write_user_project(project, layout, **{"config.log": str(log)})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(sweep), "--storage", str(tmp_path / "runs"), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = load_run(tmp_path / "runs" / "project")
    assert [t.status.value for t in run.trials] == ["finished"] * 2
    assert all(t.history[-1]["own_models"] == marker and t.history[-1]["tuner_mlp"] == 1.0 for t in run.trials)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2
    own = "models.py" if layout == "module" else "models/__init__.py"
    for where in calls:
        assert where["node"], "not run by a Ray worker"
        assert where["models"].endswith(own) and where["train"].endswith("train.py")
        # the job's copy of the project (Ray's runtime environment), not the folder itself
        assert "runtime_resources" in where["models"] and not where["models"].startswith(str(project))
        folder = Path(where["models"]).parent if layout == "module" else Path(where["models"]).parent.parent
        assert folder == Path(where["train"]).parent  # beside the function, in the same copy
        assert where["tuner.models"] == str((ROOT / "models" / "__init__.py").resolve())
    shutil.rmtree(tmp_path / "runs", ignore_errors=True)


def test_a_trial_that_hangs_is_ended_by_trial_timeout_and_the_sweep_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A function that stops reporting (it sleeps for an hour at epoch 2 when ``hang_at`` is
    2) would hold its CPU and the run's end for ever; with ``trial_timeout: 20`` its process is
    ended 20 s after its last report, the trial fails with that reason (not Ray's "the actor
    died"), and the other trial finishes."""
    raw = function_sweep(tmp_path / "calls.jsonl", trial_timeout=20)
    raw["config"].update(epochs=3, hang_at=0)
    raw["search"] = {"method": "grid", "parameters": {"hang_at": {"values": [2, 0]}}}
    raw["scheduler"] = {"name": "none", "max_t": 3}
    path = tmp_path / "hang.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(path), "--storage", str(tmp_path / "runs"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    run = load_run(tmp_path / "runs" / "fn")
    by_hang = {t.params["hang_at"]: t for t in run.trials}
    hung, fine = by_hang[2], by_hang[0]
    assert fine.status.value == "finished" and len(fine.history) == 3
    assert hung.status.value == "error" and len(hung.history) == 1
    assert hung.error == "no report within 20 s (trial_timeout): stopped as hung", hung.error
    assert "stopped as hung" in (Path(hung.path) / "output.txt").read_text()
    # the summary (on stderr with --json) and the JSON both say why
    said = json.loads(out)
    assert said["status"] == "done" and said["trials"] == {"finished": 1, "error": 1}, said
    assert any(e.endswith("no report within 20 s (trial_timeout): stopped as hung") for e in said["errors"]), said
    assert "no report within 20 s (trial_timeout): stopped as hung" in err and "top " in err, err
    # while it ran, the console named the trial and the reason, not Ray's guess of a dead process
    assert re.search(rf"trial {hung.trial_id}: no report within 20 s \(trial_timeout\): stopped as hung", err), err
    assert "a trial's process died" not in err, err
    # no trial's watchdog left an empty trace in the run directory (Python's watcher said it)
    traces = list((tmp_path / "runs" / "fn").rglob("timed-out.trace"))
    assert not [t for t in traces if t.stat().st_size == 0], traces
