"""End-to-end sweeps on a real local Ray instance (one per test session)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_sweep
from tests.tuner.ray.test_asha import check_decisions, rungs_file
from tuner.errors import InputError
from tuner.ray.search import sample
from tuner.results import load_run
from tuner.runner import describe, new_run_dir, run_sweep
from tuner.spec import from_dict

pytestmark = pytest.mark.usefixtures("ray_session")


def run(tmp_path: Path, **overrides: object):
    sweep = from_dict(tiny_sweep(**overrides), source=str(tmp_path / "tiny.yaml"))
    lines: list[str] = []
    summary = run_sweep(sweep, storage=tmp_path / "runs", write=lines.append, progress_every_s=0.5)
    return sweep, summary, lines


def test_random_asha_sweep_end_to_end(tmp_path: Path) -> None:
    import signal

    ctrl_c = signal.getsignal(signal.SIGINT)
    sweep, summary, lines = run(tmp_path, **{"search.num_samples": 12, "train.epochs": 4})
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # Ray Tune's own handler left in place swallowed the next Ctrl-C
    run_dir = summary.run_dir
    assert run_dir == tmp_path / "runs" / "tiny"
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "done" and meta["rounds"][0]["status"] == "done"
    assert meta["provenance"]["data"]["sha256"] and meta["provenance"]["versions"]["ray"].startswith("2.60")
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text()) == sweep.to_dict()
    trials = summary.run.trials
    assert len(trials) == 12
    # each trial reported every epoch it ran, with every metric
    for t in trials:
        assert [h["epoch"] for h in t.history] == list(range(1, t.epochs + 1))
        assert {"train_loss", "val_loss", "val_acc", "epoch"} <= set(t.history[-1])
    # ASHA stopped some early (12 very different learning rates), and they are visible as such
    statuses = {t.status for t in trials}
    assert "stopped" in statuses and "finished" in statuses
    assert sum(t.epochs for t in trials) < 12 * 4
    # ...each exactly at a rung where ASHA judged it: results travel in batches, but a batch
    # ends at every rung, so no trial trains (or reports) past the epoch it was stopped at
    rungs = sweep.scheduler.milestones()
    assert rungs and all(t.epochs in rungs for t in trials if t.status == "stopped")
    # ...and the ones stopped were the worse: each decision against the cutoff of the rung
    # records ASHA held when the trial reached the rung (asha-rungs.json keeps their order)
    assert check_decisions(rungs_file(run_dir), trials, "val_acc", "max", sweep.scheduler.reduction_factor) >= 1
    # the trials got exactly the configurations `tuner space` prints for this seed
    expected = list(sample(sweep.search.parameters, "random", 12, 0))
    got = [t.params for t in trials]
    assert sorted(map(json.dumps, got)) == sorted(map(json.dumps, expected))
    # the configuration holds β itself, inside the file's bounds
    assert all(0.5 <= t.params["train.momentum"] <= 0.99 for t in trials)
    # the export was written, and the readable progress went through `write`
    export = yaml.safe_load((run_dir / "best.yaml").read_text())
    best = summary.run.ranked()[0]
    assert export["score"] == best.score("val_acc") and export["params"] == best.params
    assert any("running" in line and "best val_acc" in line for line in lines)
    text = "\n".join(describe(summary))
    assert str(run_dir) in text and "best.yaml" in text and "stopped" in text


def test_scheduler_none_runs_every_trial_to_its_full_budget(tmp_path: Path) -> None:
    _, summary, _ = run(tmp_path, **{"scheduler.name": "none", "search.num_samples": 3})
    assert [t.status for t in summary.run.trials] == ["finished"] * 3
    assert all(t.epochs == 3 for t in summary.run.trials)


def test_a_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    _, summary, _ = run(
        tmp_path,
        **{
            "model.batch_norm": False,
            "train.momentum": 0.0,
            "scheduler.name": "none",
            "search.parameters": {"train.lr": {"values": [1.0e6, 0.05]}},
            "search.method": "grid",
            "search.num_samples": 1,
        },
    )
    by_lr = {t.params["train.lr"]: t for t in summary.run.trials}
    bad, good = by_lr[1.0e6], by_lr[0.05]
    assert bad.status == "diverged" and bad.history[-1]["diverged"] is True
    assert bad.history[-1]["val_acc"] == 0.0 and math.isinf(bad.history[-1]["val_loss"])
    assert good.status == "finished" and good.epochs == 3
    assert summary.run.ranked()[0] is good


def test_grid_and_tpe_sweeps(tmp_path: Path) -> None:
    _, grid, _ = run(
        tmp_path,
        **{
            "search.method": "grid",
            "search.num_samples": 1,
            "scheduler.name": "none",
            "search.parameters": {
                "train.lr": {"distribution": "log_uniform", "min": 1e-2, "max": 1e-1, "grid_points": 2},
                "model.hidden": {"values": [[8], [8, 8]]},
            },
        },
    )
    assert len(grid.run.trials) == 4
    assert {(round(t.params["train.lr"], 6), tuple(t.params["model.hidden"])) for t in grid.run.trials} == {
        (lr, h) for lr in (0.01, 0.1) for h in ((8,), (8, 8))
    }
    _, tpe, _ = run(tmp_path, **{"search.method": "tpe", "search.num_samples": 4, "search.max_concurrent": 2})
    assert len(tpe.run.trials) == 4
    assert all(0.5 <= t.params["train.momentum"] <= 0.99 for t in tpe.run.trials)


def test_data_is_loaded_once_in_the_driver(tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    _, summary, _ = run(
        tmp_path,
        data={"name": "tests.fixtures_data:counting_data", "kwargs": {"log": str(log)}},
        **{"search.num_samples": 3, "scheduler.name": "none"},
    )
    assert len(summary.run.trials) == 3
    assert log.read_text().count("called") == 1


def test_a_user_model_function_trains_in_the_trials(tmp_path: Path) -> None:
    _, summary, _ = run(
        tmp_path,
        model={"name": "tests.fixtures_data:tiny_net", "kwargs": {"width": 4}},
        **{
            "search.parameters": {"model.kwargs.width": {"values": [2, 6]}},
            "search.method": "grid",
            "search.num_samples": 1,
            "scheduler.name": "none",
        },
    )
    assert sorted(t.params["model.kwargs.width"] for t in summary.run.trials) == [2, 6]
    assert all(t.status == "finished" for t in summary.run.trials)


def test_a_gpu_sweep_on_a_cluster_without_gpus_fails_at_once_and_writes_nothing(tmp_path: Path) -> None:
    sweep = from_dict(tiny_sweep(**{"resources.gpu": 1}), source="tiny.yaml")
    with pytest.raises(InputError, match="resources.gpu: 1 per trial, but no node of this cluster has a GPU"):
        run_sweep(sweep, storage=tmp_path / "runs", write=lambda _: None)
    assert not (tmp_path / "runs").exists()
    sweep = from_dict(tiny_sweep(**{"resources.cpu": 64}), source="tiny.yaml")
    with pytest.raises(InputError, match="resources.cpu: 64 per trial, but the largest node has 2 CPUs"):
        run_sweep(sweep, storage=tmp_path / "runs", write=lambda _: None)
    assert not (tmp_path / "runs").exists()


def test_bad_data_fails_before_anything_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    sweep = from_dict(tiny_sweep(data={"name": "npz", "path": str(bad)}), source="tiny.yaml")
    with pytest.raises(InputError, match="tiny.yaml: data: .*bad.npz: not a readable .npz file"):
        run_sweep(sweep, storage=tmp_path / "runs", write=lambda _: None)
    assert not (tmp_path / "runs").exists()


def test_a_second_run_of_the_same_name_gets_its_own_directory(tmp_path: Path) -> None:
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    assert new_run_dir(tmp_path / "runs", "tiny") == tmp_path / "runs" / "tiny"  # empty: reused
    (tmp_path / "runs" / "tiny" / "run.json").write_text("{}")
    assert new_run_dir(tmp_path / "runs", "tiny") == tmp_path / "runs" / "tiny-2"
    _, summary, _ = run(tmp_path, **{"search.num_samples": 1, "scheduler.name": "none"})
    assert summary.run_dir.name == "tiny-2" and load_run(summary.run_dir).meta.status == "done"


def test_a_trial_uses_its_cpus_and_reports_where_it_ran_and_amp_on_cpu_is_ignored_with_a_warning(
    tmp_path: Path,
) -> None:
    _, summary, lines = run(
        tmp_path, **{"resources.cpu": 2, "train.amp": True, "search.num_samples": 1, "scheduler.name": "none"}
    )
    assert any(line.startswith("warning: train.amp: mixed precision needs a GPU") for line in lines)
    (t,) = summary.run.trials
    assert t.status == "finished" and t.node_id
    rows = [json.loads(line) for line in (Path(t.path) / "result.json").read_text().splitlines()]
    assert {(r["threads"], r["device"]) for r in rows} == {(2, "cpu")}  # torch threads = the trial's CPUs


def test_resume_continues_at_the_round_that_was_running(tmp_path: Path) -> None:
    """A two-round (refine) run in one experiment, then its run.json set back as a crash in
    round 2 leaves it: resuming restores the experiment (the searcher included, so round 2
    keeps the ranges it had), runs nothing again (every trial had finished), loses no result
    and marks the run done; a second resume is refused."""
    from tuner.resuming import resume_sweep

    refine = {"rounds": 1, "top_k": 2, "num_samples": 2}
    _, summary, _ = run(tmp_path, **{"search.num_samples": 3, "scheduler.name": "none", "search.refine": refine})
    run_dir = summary.run_dir
    done = load_run(run_dir)
    histories = {t.trial_id: t.history for t in done.trials}
    assert [r.status for r in done.meta.rounds] == ["done", "done"]
    assert sorted(t.round for t in done.trials) == [0, 0, 0, 1, 1]
    assert {r.dir for r in done.meta.rounds} == {"trials"}  # both rounds: one experiment

    meta = json.loads((run_dir / "run.json").read_text())
    meta["status"] = "running"
    meta["rounds"][1]["status"] = "running"
    (run_dir / "run.json").write_text(json.dumps(meta))
    lines: list[str] = []
    resumed = resume_sweep(run_dir, write=lines.append, progress_every_s=0.5)
    assert any(line.startswith("resuming tiny at round 2/2") for line in lines), lines
    assert "continuing from the saved state" in lines
    assert any("pickled state" in line and "trusted source" in line for line in lines)
    assert resumed.run.meta.status == "done" and len(resumed.run.meta.resumed) == 1
    assert [r.status for r in resumed.run.meta.rounds] == ["done", "done"]
    assert [r.parameters for r in resumed.run.meta.rounds] == [r.parameters for r in done.meta.rounds]
    assert {t.trial_id: t.history for t in resumed.run.trials} == histories  # nothing re-ran, nothing lost
    assert (run_dir / "best.yaml").is_file()

    with pytest.raises(InputError, match="the run is done already; nothing to resume"):
        resume_sweep(run_dir, write=lambda _: None)


def test_resume_refuses_what_it_cannot_resume(tmp_path: Path) -> None:
    import tuner
    from tests.tuner.fake_run import epochs, make_run
    from tuner.cli import main
    from tuner.resuming import resume_sweep

    with pytest.raises(InputError, match="no such run directory"):
        tuner.resume(tmp_path / "nothing", write=lambda _: None)
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5))])
    meta = json.loads((run_dir / "run.json").read_text())
    meta.update(status="interrupted", provenance={**meta["provenance"], "data": {"sha256": "0" * 64}})
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="data: the data set differs from the one this run started with"):
        resume_sweep(run_dir, write=lambda _: None)
    assert main(["resume", str(run_dir)]) == 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"  # untouched


def test_on_a_local_instance_trials_take_a_budget_not_a_placement_group_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's instance is local: a sweep creates no placement group (each costs GCS
    round trips and driver CPU). On a cluster (or when it is not known to be local) every trial
    keeps Tune's placement group: that is what asks an autoscaler for nodes. Neither has Tune
    read every trial's results into a table at the end (tuner never uses them)."""
    import ray
    from ray.air.execution import PlacementGroupResourceManager
    from ray.tune.execution import tune_controller

    from tuner.ray import cluster

    def groups() -> int:
        return len(ray.util.placement_group_table())

    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    tables: list[str] = []  # Tune's reads of a trial's results into a table, at the end: unused
    tune_fetch = ExperimentAnalysis._fetch_trial_dataframe
    monkeypatch.setattr(ExperimentAnalysis, "_fetch_trial_dataframe", lambda a, t: tables.append(t) or tune_fetch(a, t))
    assert cluster.on_local_instance()
    before = groups()
    _, summary, _ = run(tmp_path / "local")
    assert len(summary.run.trials) == 4 and groups() == before
    assert tables == []  # tuner reads its results its own way
    assert tune_controller.PlacementGroupResourceManager is PlacementGroupResourceManager  # restored
    monkeypatch.setattr(cluster, "_on_local_instance", False)
    _, summary, _ = run(tmp_path / "cluster")
    assert len(summary.run.trials) == 4 and groups() == before + 4 and tables == []


def test_a_run_whose_trials_all_diverged_fails_and_is_recorded_failed(tmp_path: Path) -> None:
    """Every trial diverged (its metric the worst, +inf for a loss): nothing can be exported, so
    the run failed (exit 1 with the usual block), never a run ``done`` without its export."""
    from tests.tuner.fake_run import epochs, make_run
    from tuner.errors import RunError
    from tuner.records import RunStatus
    from tuner.runner import finish
    from tuner.storage import RunStore

    run_dir = make_run(
        tmp_path,
        [({"train.lr": 0.1}, epochs(diverged_at=1)), ({"train.lr": 0.2}, epochs(0.5, diverged_at=2))],
        overrides={"metric": "val_loss", "mode": "min"},
    )
    meta = load_run(run_dir).meta
    meta.status = RunStatus.RUNNING
    with pytest.raises(RunError) as e:
        finish(RunStore.open(run_dir), meta, time.monotonic())
    assert str(e.value) == "the run failed: no trial has a finite val_loss; nothing to export (2 of 2 trials diverged)"
    assert e.value.details == [f"the trials' folders: {run_dir}/trials/"]
    saved = json.loads((run_dir / "run.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == "no trial has a finite val_loss; nothing to export"
    assert saved["finished"] and not (run_dir / "best.yaml").exists()


def test_a_run_whose_trials_were_stopped_as_hung_points_at_why_not_only_at_rays_error(tmp_path: Path) -> None:
    """Ray's error.txt of a process tuner ended as hung says only that the process died (and
    guesses at memory): the failure block points at timed-out.txt, where the reason is."""
    from tests.tuner.fake_run import make_run
    from tuner.errors import RunError
    from tuner.records import RunStatus
    from tuner.runner import finish
    from tuner.storage import RunStore

    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, []), ({"train.lr": 0.2}, [])], error_for={0, 1})
    for d in (run_dir / "round-0").iterdir():
        (d / "timed-out.txt").write_text("no report within 8 s (trial_timeout): stopped as hung\n")
    meta = load_run(run_dir).meta
    meta.status = RunStatus.RUNNING
    with pytest.raises(RunError) as e:
        finish(RunStore.open(run_dir), meta, time.monotonic())
    assert e.value.details[-1] == f"why each was stopped: {run_dir}/trials/*/timed-out.txt"
    assert "stopped as hung" in e.value.details[0]


def test_an_unexpected_failure_of_the_experiment_is_one_line_and_its_traceback_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's TuneError reads "Traceback (most recent call last):" as its first line: that was
    all a run said, and no traceback was kept anywhere."""
    from tests.tuner.fake_run import epochs, make_run
    from tuner.errors import RunError
    from tuner.records import RunStatus
    from tuner.runner import run_guarded
    from tuner.storage import RunStore

    monkeypatch.setenv("TUNER_LOG_DIR", str(tmp_path / "logs"))
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5))])
    meta = load_run(run_dir).meta

    class TuneError(Exception):
        pass

    def body() -> None:
        raise TuneError("Traceback (most recent call last):\n  File x, line 1\nValueError: the metric is missing\n")

    with pytest.raises(RunError) as e:
        run_guarded(body, RunStore.open(run_dir), meta, lambda line: None)
    (log,) = (tmp_path / "logs").glob("tuner-*.log")
    assert str(e.value) == f"the run failed: TuneError: ValueError: the metric is missing (the traceback is in {log})"
    assert "Traceback" in log.read_text() and "the metric is missing" in log.read_text()
    saved = json.loads((run_dir / "run.json").read_text())
    assert (
        saved["status"] == RunStatus.FAILED.value and saved["error"] == "TuneError: ValueError: the metric is missing"
    )


def test_a_ctrl_c_before_the_first_trial_is_created_interrupts_the_run_and_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray Tune's Ctrl-C handler makes ``fit`` return as if the experiment had ended; tuner told
    an interrupt by the trials left unfinished, and a Ctrl-C right after Tune set its handler
    left none: the run failed with "no trial produced a result (0 of 0 trials failed)" (a
    notebook's interrupt 3 s into ``tuner.run``). It is interrupted, and resumes to the end."""
    import os
    import signal

    import ray.tune.tune as tune_run

    from tuner.resuming import resume_sweep

    setup = tune_run._setup_signal_catching

    def ctrl_c_at_once() -> object:
        event = setup()
        os.kill(os.getpid(), signal.SIGINT)  # Tune's handler, just set, takes it
        return event

    monkeypatch.setattr(tune_run, "_setup_signal_catching", ctrl_c_at_once)
    raw = tiny_sweep(**{"search.num_samples": 2, "train.epochs": 2, "scheduler.name": "none"})
    sweep = from_dict(raw, source=str(tmp_path / "tiny.yaml"))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, storage=tmp_path / "runs", write=lambda _: None)
    run_dir = tmp_path / "runs" / "tiny"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    monkeypatch.setattr(tune_run, "_setup_signal_catching", setup)
    lines: list[str] = []
    resumed = resume_sweep(run_dir, write=lines.append)
    assert any(line.startswith("resuming tiny at the start") for line in lines), lines  # no trial to continue
    assert any(
        line.startswith("note: the run was interrupted before its first trial: it starts over") for line in lines
    )
    assert resumed.run.meta.status.value == "done" and len(resumed.run.trials) == 2
    assert all(len(t.history) == 2 for t in resumed.run.trials)
