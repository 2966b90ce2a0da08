"""The driver's callbacks: how an experiment ended, and what is pickled into its state."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle

from tuner.ray.callbacks import ProgressCallback
from tuner.ray.experiment import _ended
from tuner.ray.outcome import FirstFailures, Outcome


def test_an_experiment_ended_by_ctrl_c_is_told_from_a_finished_one() -> None:
    def trials(*statuses: str) -> list[Any]:
        return [SimpleNamespace(trial_id=f"t{i}", status=s) for i, s in enumerate(statuses)]

    finished = Outcome()
    done = trials("TERMINATED", "ERROR")
    for t in done:
        finished.on_trial_start(1, done, t)
    finished.on_trial_complete(2, done, done[0])
    finished.on_trial_error(2, done, done[1])
    finished.on_experiment_end(done)
    assert finished.unfinished == 0
    # Ctrl-C: Tune's cleanup marks the running trials TERMINATED without telling the callbacks
    interrupted = Outcome()
    end = trials("TERMINATED", "TERMINATED", "PENDING")
    for t in end[:2]:
        interrupted.on_trial_start(1, end, t)
    interrupted.on_trial_complete(2, end, end[1])
    interrupted.on_experiment_end(end)
    assert interrupted.unfinished == 2  # one still running, one never started
    with pytest.raises(KeyboardInterrupt):
        _ended(interrupted, FirstFailures())
    assert _ended(finished, FirstFailures()) == 0
    # stopped because its first trials all failed alike: not an interruption, however many were left
    tripped = FirstFailures(limit=1)
    tripped.tripped, tripped.errors = True, ["ImportError: no module named 'x'"]
    assert _ended(interrupted, tripped) == 1


def test_the_progress_printer_is_not_pickled_into_the_experiment() -> None:
    lines: list[str] = []
    cb = ProgressCallback(lambda events: lines.append("x"), 0.0)
    copy = cloudpickle.loads(cloudpickle.dumps(cb))
    assert copy.on_step is None and cb.on_step is not None
    copy.on_experiment_end([])  # without a printer: silent


class _Trial:
    """A Tune trial whose ``last_result`` (rebuilt by Tune at each access) counts its reads."""

    def __init__(self, i: int, status: str) -> None:
        self.trial_id, self.status, self.config, self.reads = f"t{i}", status, {"x": i}, 0

    @property
    def last_result(self) -> dict[str, Any]:
        self.reads += 1
        return {"epoch": 3, "val_acc": 0.5}


def test_the_progress_takes_an_ended_trials_state_once() -> None:
    seen: list[list[Any]] = []
    cb = ProgressCallback(seen.append, 0.0)
    trials = [_Trial(0, "TERMINATED"), _Trial(1, "ERROR"), _Trial(2, "RUNNING"), _Trial(3, "PENDING")]
    for step in range(3):
        cb.on_step_end(step, trials)
    assert [t.reads for t in trials] == [1, 1, 3, 3]
    assert [[(e.trial_id, e.status, e.epochs()) for e in events] for events in seen] == 3 * [
        [("t0", "TERMINATED", 3), ("t1", "ERROR", 3), ("t2", "RUNNING", 3), ("t3", "PENDING", 3)]
    ]
    trials[2].status = "TERMINATED"  # it ends: its final state is the one kept
    cb.on_step_end(3, trials)
    cb.on_step_end(4, trials)
    assert trials[2].reads == 4 and seen[-1][2].status == "TERMINATED"
    assert cloudpickle.loads(cloudpickle.dumps(cb))._ended == {}  # not part of the experiment's state


def test_after_ctrl_c_the_last_progress_line_counts_the_running_trials_as_interrupted_not_stopped_early() -> None:
    """Tune's cleanup of a Ctrl-C marks the running trials TERMINATED without telling the
    callbacks: they did not end (``tuner resume`` continues them), so the last line counts them
    interrupted, not stopped early."""
    from tuner.progress import Progress

    lines: list[str] = []
    progress = Progress("val_acc", "max", 5, write=lines.append)
    cb = ProgressCallback(progress.update, 0.0)
    trials = [_Trial(0, "RUNNING"), _Trial(1, "RUNNING"), _Trial(2, "RUNNING"), _Trial(3, "PENDING")]
    for t in trials[:3]:
        cb.on_trial_start(1, trials, t)
    trials[0].status = "TERMINATED"  # stopped early by ASHA, and told so
    cb.on_trial_complete(2, trials, trials[0])
    for t in trials[1:]:
        t.status = "TERMINATED"  # the interrupt: the pending trial too
    cb.on_experiment_end(trials)
    assert "0 running, 1 pending, 0 finished, 1 stopped early, 0 diverged, 0 errors, 2 interrupted |" in lines[-1]
    ended = ProgressCallback(progress.update, 0.0)  # a run that ended: no interrupted trial, none said
    ended.on_trial_start(1, trials, trials[0])
    ended.on_trial_complete(2, trials, trials[0])
    ended.on_experiment_end(trials[:1])
    assert lines[-1].endswith("1 stopped early, 0 diverged, 0 errors | best val_acc 0.5000 (t0)")
    resumed = ProgressCallback(progress.update, 0.0)  # a resumed run's trial that ended before: seen so
    resumed.on_step_end(1, trials[:1])
    resumed.on_experiment_end(trials[:1])
    assert lines[-1].endswith("1 stopped early, 0 diverged, 0 errors | best val_acc 0.5000 (t0)")


def failed(tmp_path: Path, name: str, error: str | None) -> Any:
    """A trial that failed with ``error`` in its error.txt as Ray writes it (None: no file)."""
    path = tmp_path / name / "error.txt"
    if error is not None:
        path.parent.mkdir()
        path.write_text(f"Failure # 1 (occurred at 2026-11-29_04-00-00)\nTraceback ...\n  ...\n{error}\n")
    return SimpleNamespace(trial_id=name, status="ERROR", error_file=str(path))


IMPORT = "tuner.trial.TrialError: train:fit: cannot be imported: No module named 'modles' (on node {})"


def test_the_first_trials_failing_alike_before_any_result_stop_the_experiment(tmp_path: Path) -> None:
    first = FirstFailures(limit=3)
    for i, node in enumerate(["aa11", "bb22", "aa11"]):  # the same error on any node
        assert not first.stop_all()
        first.on_trial_error(i, [], failed(tmp_path, f"t{i}", IMPORT.format(node)))
    assert first.stop_all() and first.errors == ["train:fit: cannot be imported: No module named 'modles'"] * 3
    assert first("t9", {"val_acc": 0.5}) is False  # no single trial is stopped


@pytest.mark.parametrize(
    "before",
    [
        "result",  # a trial reported first: the function works for some configurations
        "complete",  # a trial finished (a function that reports nothing)
        "other error",  # the first errors differ (a batch too large for memory, another config's bug)
        "unreadable",  # no error.txt to compare
    ],
)
def test_a_sweep_whose_first_trials_do_not_all_fail_alike_before_any_result_goes_on(
    tmp_path: Path, before: str
) -> None:
    first = FirstFailures(limit=3)
    if before == "result":
        first.on_trial_result(1, [], SimpleNamespace(trial_id="ok"), {"val_acc": 0.5})
    elif before == "complete":
        first.on_trial_complete(1, [], SimpleNamespace(trial_id="ok"))
    elif before == "other error":
        first.on_trial_error(
            1, [], failed(tmp_path, "oom", "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB")
        )
    else:
        first.on_trial_error(1, [], failed(tmp_path, "gone", None))
    for i in range(5):
        first.on_trial_error(i, [], failed(tmp_path, f"t{i}", IMPORT.format("aa11")))
    assert not first.stop_all()


def test_the_stop_survives_the_experiments_pickle(tmp_path: Path) -> None:
    first = FirstFailures(limit=2)
    first.on_trial_error(1, [], failed(tmp_path, "t1", IMPORT.format("aa11")))
    again = cloudpickle.loads(cloudpickle.dumps(first))  # tuner.pkl, read back by tuner resume
    again.on_trial_error(2, [], failed(tmp_path, "t2", IMPORT.format("cc33")))
    assert again.stop_all() and not first.stop_all()


def test_errors_that_differ_only_in_the_ids_they_name_are_the_same_error(tmp_path: Path) -> None:
    """Ray names a task, an actor or a worker in its errors: the same error of every trial must
    still read as one (the early stop, the run's summary)."""
    first = FirstFailures(limit=3)
    for i, task in enumerate(["f91b78d7a1c2e3f4ffffffff01000000", "85748392aa00bb11ffffffff01000000", "0abc1234ef56"]):
        error = f"ray.exceptions.TaskCancelledError: Task: TaskID({task}) was cancelled."
        first.on_trial_error(i, [], failed(tmp_path, f"t{i}", error))
    assert (
        first.stop_all() and first.errors == ["ray.exceptions.TaskCancelledError: Task: TaskID(…) was cancelled."] * 3
    )


def test_the_summary_groups_failures_whatever_ids_they_name() -> None:
    from tuner.records import TrialStatus
    from tuner.summary import failures

    def trial(trial_id: str, error: str) -> Any:
        return SimpleNamespace(trial_id=trial_id, status=TrialStatus.ERROR, error=error)

    run = SimpleNamespace(
        trials=[
            trial("a1", "The actor 8d6eec1f2a3b4c5d is unavailable: Socket closed"),
            trial("b2", "The actor 0123abcd4567ef89 is unavailable: Socket closed"),
            trial("c3", "ValueError: boom (in fit, at train.py:12)"),  # numbers are not ids
            trial("d4", "ValueError: boom (in fit, at train.py:13)"),
        ]
    )
    assert failures(run) == [
        "2 trials (a1, ...): The actor 8d6eec1f2a3b4c5d is unavailable: Socket closed",
        "1 trial (c3): ValueError: boom (in fit, at train.py:12)",
        "1 trial (d4): ValueError: boom (in fit, at train.py:13)",
    ]


def test_a_progress_callback_saved_before_it_knew_its_live_trials_is_restored_with_none() -> None:
    """An experiment interrupted by an older tuner is resumed by this one: its pickled callback
    lacks what it keeps now."""
    cb = ProgressCallback(None, 0.0)
    state = cb.__getstate__()
    for key in ("_live", "_told"):
        del state[key]
    old = ProgressCallback.__new__(ProgressCallback)
    old.__setstate__(state)
    old.on_trial_start(1, [], _Trial(0, "RUNNING"))
    old.on_trial_complete(2, [], _Trial(0, "TERMINATED"))
    assert old._told == {"t0"}
