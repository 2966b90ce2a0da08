from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.tuner.fake_run import epochs, make_run
from tuner.errors import InputError
from tuner.results import load_run


def test_statuses_histories_and_ranking(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1}, epochs(0.5, 0.6, 0.7)),  # finished
            ({"train.lr": 0.2}, epochs(0.4)),  # stopped early by ASHA
            ({"train.lr": 9.0}, epochs(0.3, diverged_at=2)),  # diverged
            ({"train.lr": 0.3}, epochs(0.2)),  # failed
            ({"train.lr": 0.4}, []),  # failed before its first epoch
        ],
        error_for={3, 4},
    )
    run = load_run(run_dir)
    by_lr = {t.params["train.lr"]: t for t in run.trials}
    assert [by_lr[x].status for x in (0.1, 0.2, 9.0, 0.3, 0.4)] == ["finished", "stopped", "diverged", "error", "error"]
    assert by_lr[0.3].error == "RuntimeError: boom"
    assert by_lr[0.1].epochs == 3 and by_lr[0.4].epochs == 0 and by_lr[0.4].score("val_acc") is None
    assert by_lr[0.1].node == "10.0.0.1" and by_lr[0.1].trial_id == "abcde_00000"
    assert by_lr[0.4].trial_id == "abcde_00004"  # from the folder name when there is no result
    assert [t.params["train.lr"] for t in run.ranked()] == [0.1, 0.2, 9.0, 0.3]  # failed: last


def test_min_mode_ranks_low_first_and_infinite_last(tmp_path: Path) -> None:
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1}, epochs(0.5)),
            ({"train.lr": 9.0}, epochs(0.9, diverged_at=2)),
            ({"train.lr": 0.2}, epochs(0.8)),
        ],
    )
    run = load_run(run_dir)
    run.sweep = replace(run.sweep, metric="val_loss", mode="min")
    assert [t.params["train.lr"] for t in run.ranked()] == [0.2, 0.1, 9.0]


def test_a_restored_trial_reporting_an_epoch_twice_keeps_the_last_and_torn_lines_are_skipped(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6))])
    result = next((run_dir / "round-0").iterdir()) / "result.json"
    text = result.read_text()
    text += '{"epoch": 2, "val_acc": 0.65, "val_loss": 0.3, "train_loss": 0.3}\n{"epoch": 3, "val_a'
    result.write_text(text)
    (trial,) = load_run(run_dir).trials
    assert [h["epoch"] for h in trial.history] == [1, 2] and trial.history[-1]["val_acc"] == 0.65


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such run directory"):
        load_run(tmp_path / "absent")
    with pytest.raises(InputError, match="not a tuner run directory"):
        load_run(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    (tmp_path / "sweep.yaml").write_text("name: x\n")
    with pytest.raises(InputError, match=r"run.json:1:2: invalid JSON"):
        load_run(tmp_path)


def test_params_cut_short_by_a_killed_driver_come_from_the_results_or_the_trial_is_skipped(tmp_path: Path) -> None:
    """A SIGKILLed driver can leave ``params.json`` empty (Ray writes it unbuffered-late):
    the config in the trial's results stands in; a trial with neither is left out."""
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6)), ({"train.lr": 0.2}, [])])
    for d in (run_dir / "round-0").iterdir():
        (d / "params.json").write_text("")
    run = load_run(run_dir)
    (trial,) = run.trials
    assert trial.params == {"train.lr": 0.1} and trial.epochs == 2
    assert run.unreadable == [] and run.unreadable_note() is None  # nothing lost: not damage


def test_trial_folders_that_cannot_be_read_are_recorded_with_why(tmp_path: Path) -> None:
    import os

    run_dir = make_run(tmp_path, [({"train.lr": 0.1 * (i + 1)}, epochs(0.5 + 0.01 * i)) for i in range(5)])
    folders = sorted((run_dir / "round-0").iterdir())
    (folders[0] / "params.json").unlink()
    (folders[0] / "result.json").write_text("")  # nothing holds its config
    (folders[1] / "result.json").write_bytes(b"\x00\xffnot json\n\x01\x02")
    (folders[2] / "result.json").unlink()
    os.mkfifo(folders[2] / "result.json")  # read, it would wait for a writer forever
    (folders[3] / "params.json").unlink()  # its reports hold the config: read whole
    (run_dir / "round-0" / "report").mkdir()  # not a trial's folder
    run = load_run(run_dir)
    assert sorted(t.params["train.lr"] for t in run.ranked()) == pytest.approx([0.4, 0.5])
    assert run.unreadable == [
        (str(folders[0]), "no params.json (and no report holds the trial's config)"),
        (str(folders[1]), "result.json: none of its 2 lines is JSON"),
        (str(folders[2]), "result.json is not a regular file"),
    ]
    assert run.unreadable_note() == (
        f"{run_dir}: 3 trial folders could not be read and are left out (the run's best may be among them); "
        f"the first: {folders[0]}: no params.json (and no report holds the trial's config)"
    )


def test_files_of_a_trial_folder_are_read_within_bounds(tmp_path: Path) -> None:
    """A sparse params.json or result.json of 600 MB (4 KB on disk) cost 1.3 GB of memory to
    read; an error.txt was read whole to keep one line. Now: the folder is unreadable, with
    why, and the rest of the run reads as before."""
    import os

    run_dir = make_run(tmp_path, [({"train.lr": 0.1 * (i + 1)}, epochs(0.5 + 0.01 * i)) for i in range(4)], 1)
    folders = sorted((run_dir / "round-0").iterdir())
    with open(folders[0] / "params.json", "r+b") as f:
        f.truncate(600 * 1024 * 1024)
    with open(folders[1] / "result.json", "r+b") as f:
        f.truncate(600 * 1024 * 1024)
    long_line = b'{"epoch": 1, "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}\n'
    (folders[2] / "result.json").write_bytes(long_line + (folders[2] / "result.json").read_bytes())
    (folders[3] / "error.txt").write_bytes(b"noise\n" * 200_000 + b"RuntimeError: the last line\n")
    run = load_run(run_dir)
    assert sorted(t.trial_id for t in run.trials) == ["abcde_00000", "abcde_00002", "abcde_00003"]
    assert [t.epochs for t in sorted(run.trials, key=lambda t: t.trial_id)] == [1, 1, 1]  # the long line skipped
    assert run.trials[0].params == {"train.lr": 0.1}  # not read: its reports hold the config
    assert run.unreadable == [
        (str(folders[1]), "result.json: 629,145,600 bytes, more than the 268,435,456 this file may hold: not read"),
    ]
    (folders[0] / "result.json").write_text("")  # now nothing else holds its config
    assert load_run(run_dir).unreadable[0] == (str(folders[0]), "params.json is larger than 4 MB")
    (trial,) = [t for t in run.trials if t.trial_id == "abcde_00003"]
    assert trial.error == "RuntimeError: the last line"
    assert os.path.getsize(folders[1] / "result.json") == 600 * 1024 * 1024


def test_a_trial_folder_copied_beside_itself_counts_once(tmp_path: Path) -> None:
    """``cp -a T T_copy`` (an rsync, a desktop copy) made two records of one trial: export
    refused the run, blaming its own output file."""
    import shutil

    from tuner import export_file

    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5, 0.6)), ({"train.lr": 0.2}, epochs(0.4))], 2)
    first = sorted((run_dir / "round-0").iterdir())[0]
    copy = first.with_name(first.name + "_copy")
    shutil.copytree(first, copy)
    lines = (copy / "result.json").read_text().splitlines()
    (copy / "result.json").write_text(lines[0] + "\n")  # the copy has fewer epochs: the original stays
    run = load_run(run_dir)
    assert sorted(t.trial_id for t in run.trials) == ["abcde_00000", "abcde_00001"]
    (kept,) = [t for t in run.trials if t.trial_id == "abcde_00000"]
    assert kept.path == str(first) and kept.epochs == 2
    assert run.unreadable == [(str(copy), f"the same trial (abcde_00000) as {first}: a copy, left out")]
    assert export_file.export_run(run_dir).is_file()


def test_a_file_given_as_a_run_directory_is_said_to_be_a_file(tmp_path: Path) -> None:
    (tmp_path / "best.yaml").write_text("a: 1\n")
    with pytest.raises(InputError, match=r"best\.yaml: is a file, not a run directory$"):
        load_run(tmp_path / "best.yaml")


def test_a_trial_that_failed_restarted_and_reported_on_is_not_a_failed_trial(tmp_path: Path) -> None:
    """A lost node's trial restarts from its checkpoint and finishes, but Ray's ``error.txt`` of
    its first attempt stays: it was recorded as an error, and the run said "1 trials failed"."""
    from tuner.records import TrialStatus

    runs = [({"train.lr": 0.1 * (i + 1)}, epochs(0.5, 0.6, 0.7)[: 3 - i]) for i in range(3)]  # 3, 2, 1 epochs
    run_dir = make_run(tmp_path, runs, 3, overrides={"scheduler.name": "none"})
    folders = sorted((run_dir / "round-0").iterdir())
    failure = "Failure # {} (occurred at 2026-11-29_12-00-0{})\nray.exceptions.ActorDiedError: the node died\n"
    for d, restarts_at, failures in ((folders[0], (1, 3), 1), (folders[1], (1,), 1), (folders[2], (1,), 2)):
        rows = [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
        since = 0
        for row in rows:  # Ray counts the reports of each start of the trial's process
            since = 1 if row["epoch"] in restarts_at else since + 1
            row["iterations_since_restore"] = since
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "error.txt").write_text("".join(failure.format(n, n) for n in range(1, failures + 1)))
    status = {t.path: (t.status, t.error) for t in load_run(run_dir).trials}
    assert status[str(folders[0])] == (TrialStatus.FINISHED, None)  # failed after epoch 2, went on at 3
    assert status[str(folders[1])] == (TrialStatus.ERROR, "ray.exceptions.ActorDiedError: the node died")
    assert status[str(folders[2])][0] is TrialStatus.ERROR  # a restart that failed before it reported


def test_a_trial_that_never_reported_is_named_by_its_id_from_its_folders_name(tmp_path: Path) -> None:
    """tuner's trial folders are ``run_trial_<8 hex>_<n>_...``: a trial that failed before its
    first report was shown under its whole folder name."""
    run_dir = make_run(tmp_path, [({"train.lr": 0.1}, epochs(0.5))], 1)
    (folder,) = (run_dir / "round-0").iterdir()
    mine = folder.with_name("run_trial_eb8bf08a_1_round=0,lr=0.0353_2026-11-29_12-53-59")
    folder.rename(mine)
    (mine / "result.json").write_text("")
    (mine / "error.txt").write_text("Failure # 1 (occurred at 2026-11-29_12-54-00)\nRuntimeError: boom\n")
    (trial,) = load_run(run_dir).trials
    assert trial.trial_id == "eb8bf08a" and trial.error == "RuntimeError: boom"


def test_an_interrupted_runs_trials_cut_short_are_running_and_export_says_the_run_is_unfinished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A function with no stated budget: a trial an interrupt cut at epoch 2 was "finished"
    and one that never reported "stopped" (by ASHA, in a sweep without it); the export picked
    the half-trained trial without a word."""
    from tuner import export_file
    from tuner.records import TrialStatus

    run_dir = make_run(
        tmp_path,
        [({"train.lr": 0.1}, epochs(0.5, 0.6)), ({"train.lr": 0.2}, [])],
        overrides={"scheduler.name": "none"},
    )
    meta = json.loads((run_dir / "run.json").read_text())
    from tuner.results import load_trials

    def statuses(max_t: int | None, unfinished: bool) -> list[TrialStatus]:
        trials = load_trials(run_dir / "round-0", 0, max_t, unfinished=unfinished)
        return [t.status for t in sorted(trials, key=lambda t: t.trial_id)]

    assert statuses(None, unfinished=False) == [TrialStatus.FINISHED, TrialStatus.STOPPED]  # a run that ended
    assert statuses(None, unfinished=True) == [TrialStatus.RUNNING, TrialStatus.RUNNING]
    assert statuses(3, unfinished=True) == [TrialStatus.STOPPED, TrialStatus.RUNNING]  # short of a stated budget
    meta["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(meta))
    capsys.readouterr()
    export_file.export_run(run_dir)
    assert capsys.readouterr().err == (
        f"warning: {run_dir}: the run was interrupted, some trials short of their budget: exporting the trials "
        f"that reported; continue it with tuner resume {run_dir}\n"
    )


_DIED = (
    "Failure # 1 (occurred at 2026-11-29_15-00-00)\n"
    "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.\n"
)


def test_a_trial_whose_process_tuner_ended_for_its_silence_says_so(tmp_path: Path) -> None:
    """Ray's error for a process that ended is "the actor died"; where tuner ended it
    (trial_timeout: its timed-out.txt), that reason is the trial's error. A user's own error
    (a TrialError line) still comes first, and without the file Ray's line stays."""
    from tuner.results import trial_error

    folder = tmp_path / "t"
    folder.mkdir()
    error = folder / "error.txt"
    error.write_text(_DIED)
    assert (
        trial_error(error) == "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task."
    )
    (folder / "timed-out.txt").write_text("no report within 4 s (trial_timeout): stopped as hung\n")
    assert trial_error(error) == "no report within 4 s (trial_timeout): stopped as hung"
    error.write_text("Failure # 2 (occurred at x)\ntuner.trial.TrialError: ValueError: boom (in fit, at t.py:3)\n")
    assert trial_error(error) == "ValueError: boom (in fit, at t.py:3)"


def test_a_finished_budget_less_run_ends_with_its_trials_finished_in_its_summary_and_export(tmp_path: Path) -> None:
    """A function sweep with no stated budget: the driver reads the run to end it while
    ``run.json`` still says ``running``; its trials were all ``running`` in the summary,
    ``--json`` and the export's ``top``, though the run was done."""
    import time

    import yaml

    from tuner.cli.sweep import summary_json
    from tuner.records import RunStatus
    from tuner.runner import finish
    from tuner.spec import from_dict
    from tuner.storage import RunStore

    run_dir = make_run(tmp_path, [({"x": 0.1}, epochs(0.5, 0.6)), ({"x": 0.2}, epochs(0.7, 0.8))])
    raw = {
        "name": "f",
        "metric": "val_acc",
        "mode": "max",
        "function": "nomod:fit",
        "config": {"x": 1.0},
        "search": {"num_samples": 2, "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}}},
        "scheduler": {"name": "none"},
    }
    sweep = from_dict(raw, source="f.yaml", offline=True)
    assert sweep.max_t is None
    (run_dir / "sweep.yaml").write_text(yaml.safe_dump(sweep.to_dict(), sort_keys=False))
    meta = load_run(run_dir).meta
    meta.status = RunStatus.RUNNING
    (run_dir / "run.json").write_text(
        json.dumps({**json.loads((run_dir / "run.json").read_text()), "status": "running"})
    )
    summary = finish(RunStore.open(run_dir), meta, time.monotonic())
    assert [t.status.value for t in summary.run.trials] == ["finished", "finished"]
    assert summary_json(summary)["trials"] == {"finished": 2} and summary_json(summary)["status"] == "done"
    top = yaml.safe_load((run_dir / "best.yaml").read_text())["top"]
    assert [t["status"] for t in top] == ["finished", "finished"]
    assert [t.status.value for t in load_run(run_dir).trials] == ["finished", "finished"]  # as a later read says


def test_a_failed_trial_ranks_after_every_trial_that_did_not_fail(tmp_path: Path) -> None:
    """A trial stopped as hung (or that raised) after one good report is not the run's best
    while a trial ended without an error; it is when every trial failed."""
    run_dir = make_run(
        tmp_path,
        [
            ({"train.lr": 0.1}, epochs(0.5, 0.6)),  # finished
            ({"train.lr": 0.2}, epochs(0.9)),  # failed after one good report
            ({"train.lr": 0.3}, epochs(0.4)),  # stopped early
            ({"train.lr": 9.0}, epochs(0.3, diverged_at=2)),  # diverged (val_acc 0.0): not a failure
        ],
        error_for={1},
    )
    run = load_run(run_dir)
    assert [t.params["train.lr"] for t in run.ranked()] == [0.1, 0.3, 9.0, 0.2]
    only_failed = replace(run, trials=[t for t in run.trials if t.params["train.lr"] == 0.2])
    assert [t.params["train.lr"] for t in only_failed.ranked()] == [0.2]
