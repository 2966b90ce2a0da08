"""The trial protocol a function sees: checkpoints by cost, reports checked, divergence."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
import torch

from tuner import failures, trial


def test_checkpoints_come_at_the_first_epoch_then_once_the_training_since_is_25_times_their_cost() -> None:
    policy = trial.CheckpointPolicy(now=100.0)
    assert policy.due(now=100.0)  # the first report checkpoints (and so snapshots the experiment)
    policy.taken(started=100.1, now=100.2)  # that one cost 0.1 s: the next after 2.5 s more
    assert policy.cost_s == pytest.approx(0.1)
    assert not policy.due(now=102.69) and policy.due(now=102.71)
    policy.taken(started=102.7, now=102.704)  # a cheap one: checkpoints come every 0.1 s
    assert not policy.due(now=102.8) and policy.due(now=102.81)
    # so checkpoints take at most 1/25 of the time, whatever they cost
    assert trial.CHECKPOINT_RATIO == 25


def test_a_fixed_interval_replaces_the_ratio() -> None:
    every_epoch = trial.CheckpointPolicy(every_s=0, now=0.0)
    assert every_epoch.due(now=0.0)
    every_epoch.taken(started=0.0, now=5.0)
    assert every_epoch.due(now=5.0)
    never = trial.CheckpointPolicy(every_s=1e9, now=0.0)
    assert not never.due(now=1e6)


class Recording(trial.Run):
    """A place to run that keeps what each report sends (and, when given, a saved checkpoint)."""

    def __init__(self, saved: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("metric", "val_f1")
        kwargs.setdefault("mode", "max")
        super().__init__(**kwargs)
        self.sent: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        self.saved = saved

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        self.sent.append((result, checkpoint))

    def _checkpoint(self) -> dict[str, Any] | None:
        return self.saved


def test_a_report_counts_the_epoch_and_adds_where_it_ran() -> None:
    run = Recording(cpus=3, node_id="n1")
    run.report({"val_f1": 0.5, "train_loss": np.float32(0.25), "seen": 7, "t": torch.tensor(2.0)})
    run.report({"val_f1": 0.6})
    (first, ckpt), (second, _) = run.sent
    assert first["epoch"] == 1 and second["epoch"] == 2 and run.epoch == 2
    assert first["val_f1"] == 0.5 and first["train_loss"] == 0.25 and first["t"] == 2.0
    assert type(first["train_loss"]) is float and first["seen"] == 7 and type(first["seen"]) is int
    assert first["diverged"] is False and first["node_id"] == "n1" and first["threads"] == 3
    assert first["device"] == "cpu" and first["epoch_s"] >= 0
    assert ckpt is None  # no state handed in: nothing to save
    assert run.reports == [first, second]


def test_the_first_report_must_hold_the_sweeps_metric_and_the_error_names_what_it_had() -> None:
    run = Recording()
    with pytest.raises(trial.ReportError) as e:
        run.report({"val_acc": 0.5, "train_loss": 0.3})
    message = str(e.value)
    assert "'val_f1' is not in the first report" in message and "it reported: train_loss, val_acc" in message
    assert run.sent == []  # nothing of it reached the sweep
    run = Recording()
    run.report({"val_f1": 0.5})
    with pytest.raises(trial.ReportError, match="'val_f1' is missing at epoch 2"):
        run.report({"val_acc": 0.5})


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"val_f1": "0.5"}, "'val_f1' must be a number, not str"),
        ({"val_f1": 0.5, "ok": True}, "'ok' must be a number, not bool"),
        ({"val_f1": 0.5, "w": torch.ones(3)}, "'w' must be a number, not Tensor"),
        ({"val_f1": 0.5, "a": np.ones(2)}, "'a' must be a number, not ndarray"),
        ({"val_f1": 0.5, "epoch": 3}, "'epoch' cannot be a metric name: tuner or Ray sets it"),
        ({"val_f1": 0.5, "done": 1}, "'done' cannot be a metric name"),
        ({"val_f1": 0.5, "": 1}, "cannot be a metric name"),
        ({"val_f1": 0.5, 3: 1}, "'3' cannot be a metric name"),
        ([("val_f1", 0.5)], "metrics must be a dict of numbers, not list"),
        ({f"m{i}": 1.0 for i in range(trial.MAX_METRICS + 1)}, f"at most {trial.MAX_METRICS}"),
    ],
)
def test_a_report_the_sweep_cannot_use_is_refused_naming_the_key(metrics: Any, expected: str) -> None:
    run = Recording()
    with pytest.raises(trial.ReportError) as e:
        run.report(metrics)
    assert expected in str(e.value)
    assert run.sent == [] and run.epoch == 0


def test_a_non_finite_value_marks_the_trial_diverged_with_the_worst_values_and_ends_it() -> None:
    run = Recording(metric="val_loss", mode="min")
    run.report({"val_loss": 1.0, "val_acc": 0.4})
    with pytest.raises(trial.TrialDiverged):
        run.report({"val_loss": 0.9, "train_loss": math.nan, "val_acc": 0.5})
    result, ckpt = run.sent[-1]
    assert result["diverged"] is True and result["epoch"] == 2 and ckpt is None
    assert result["val_loss"] == math.inf  # the sweep's metric: the worst, whatever it said
    assert result["train_loss"] == math.inf  # a non-finite loss: the worst of a loss
    assert result["val_acc"] == 0.5  # finite and not the metric: as reported
    # the metric may be missing from a diverged epoch (nothing else to say): set to the worst
    run = Recording(metric="val_f1", mode="max")
    with pytest.raises(trial.TrialDiverged):
        run.report({"train_loss": math.inf})
    assert run.sent[-1][0]["val_f1"] == -math.inf and run.sent[-1][0]["diverged"] is True
    assert trial.worst("max", "val_acc") == 0.0


def test_the_state_is_taken_only_when_a_checkpoint_is_due() -> None:
    calls = []

    def state() -> dict[str, Any]:
        calls.append(1)
        return {"w": torch.zeros(2)}

    run = Recording(checkpoint_every_s=1e9)  # a checkpoint never comes due
    for _ in range(3):
        run.report({"val_f1": 0.5}, state=state)
    assert calls == [] and all(c is None for _, c in run.sent)
    run = Recording(checkpoint_every_s=0)  # every epoch
    run.report({"val_f1": 0.5}, state=state)
    run.report({"val_f1": 0.6}, state={"plain": 1})
    assert calls == [1]
    assert run.sent[0][1] is not None and run.sent[0][1]["epoch"] == 1 and "w" in run.sent[0][1]["state"]
    assert run.sent[1][1] == {"epoch": 2, "state": {"plain": 1}}
    # by default (the cost ratio) the first report always checkpoints
    run = Recording()
    run.report({"val_f1": 0.5}, state=state)
    assert run.sent[0][1] is not None and len(calls) == 2


def test_restore_hands_back_the_last_saved_state_and_the_epochs_count_on() -> None:
    assert Recording().restore() is None  # a fresh trial
    run = Recording(saved={"epoch": 3, "state": {"step": 30}})
    assert run.restore() == {"step": 30} and run.restore() == {"step": 30}
    run.report({"val_f1": 0.5})
    assert run.sent[0][0]["epoch"] == 4


def test_a_report_beyond_the_budget_ends_the_function_even_through_its_own_except_exception() -> None:
    run = Recording(max_t=2)
    seen = []

    def fit(config: dict[str, Any], run: trial.Run) -> None:
        for epoch in range(1, 10):
            try:
                run.report({"val_f1": 0.1 * epoch})
            except Exception:  # a function's own broad handler must not swallow the end
                seen.append("swallowed")
            seen.append(epoch)
        seen.append("after the loop")

    trial.call(fit, {}, run)
    assert [r["epoch"] for r in run.reports] == [1, 2] and seen == [1, 2]
    assert issubclass(trial.StopTrial, BaseException) and not issubclass(trial.StopTrial, Exception)
    # a function whose loop is exactly the budget runs its code after the loop
    run = Recording(max_t=2)
    trial.call(lambda c, r: [r.report({"val_f1": 0.5}) for _ in range(2)] and seen.append("done"), {}, run)
    assert seen[-1] == "done" and run.epoch == 2


def test_a_divergence_ends_the_function_quietly_and_other_errors_pass_through() -> None:
    run = Recording()
    trial.call(lambda c, r: r.report({"val_f1": math.inf}), {}, run)
    assert run.reports[-1]["diverged"] is True
    with pytest.raises(ZeroDivisionError):
        trial.call(lambda c, r: 1 / 0, {}, Recording())


def _users_function(config: dict[str, Any], run: trial.Run) -> None:
    torch.zeros(2, 3) @ torch.zeros(2, 3)  # fails inside torch, called from here


def test_an_error_is_described_in_one_line_naming_the_users_own_frame() -> None:
    with pytest.raises(RuntimeError) as e:
        _users_function({}, Recording())
    text = failures.describe_error(e.value)
    assert "\n" not in text and text.startswith("RuntimeError: ")
    line = _users_function.__code__.co_firstlineno + 1
    assert text.endswith(f"(in _users_function, at test_trial.py:{line})")  # its frame, not torch's
    # an error of the protocol names the user's line that made the report
    run = Recording()
    with pytest.raises(trial.ReportError) as e:
        here = sys._getframe().f_lineno + 1
        run.report({"val_acc": 1.0})
    assert failures.describe_error(e.value).startswith("ReportError: run.report: the sweep's metric 'val_f1'")
    assert f"at test_trial.py:{here})" in failures.describe_error(e.value)
    long = ValueError("x" * 1000 + "\nsecond line")
    assert failures.describe_error(long) == "ValueError: " + "x" * 297 + "..."  # cut, and marked


def test_a_local_run_prints_each_report_and_keeps_its_checkpoint_in_memory() -> None:
    lines: list[str] = []
    run = trial.LocalRun(write=lines.append, metric="val_f1", mode="max", checkpoint_every_s=0)
    run.report({"val_f1": 0.123456, "n": 3}, state={"k": 1})
    assert lines == [f"epoch 1: val_f1 0.1235  n 3  epoch_s {run.reports[0]['epoch_s']:.4g}"]
    fresh = trial.LocalRun(write=lines.append, metric="val_f1", mode="max")
    fresh.saved = run.saved
    assert fresh.restore() == {"k": 1}
    with pytest.raises(trial.TrialDiverged):
        run.report({"val_f1": math.nan})
    assert lines[-1].endswith("(diverged)")


def test_a_run_defaults_to_the_cpu_one_thread_and_no_data() -> None:
    run = trial.TaskRun(metric="m", mode="min", cpus=0, seed=7)
    assert run.device == torch.device("cpu") and run.cpus == 1 and run.data is None and run.seed == 7
    run.report({"m": 1})
    assert run.reports[0]["m"] == 1


def test_a_run_made_by_hand_says_it_belongs_to_no_trial_when_reported_to() -> None:
    with pytest.raises(NotImplementedError, match=r"this tuner\.Run belongs to no trial .* the run your function is"):
        trial.Run(metric="score", mode="min").report({"score": 1.0})


def test_a_local_run_escapes_what_it_prints() -> None:
    lines: list[str] = []
    run = trial.LocalRun(write=lines.append, metric="score", mode="max")
    run.report({"score": 1.0, "two\nlines": 2.0, "\x1b[31mred": 3.0})
    assert len(lines) == 1 and "\n" not in lines[0] and "\x1b" not in lines[0]
    assert "two\\nlines 2" in lines[0] and "\\x1b[31mred 3" in lines[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.str_("0.5"), "'m' must be a number, not str_"),
        (np.complex128(1 + 2j), "'m' must be a number, not complex128"),
        (np.str_("abc"), "'m' must be a number, not str_"),
        (np.datetime64("2026-01-01"), "'m' must be a number, not datetime64"),
        (np.array("abc", dtype=object), "'m' must be a number, not ndarray of object"),
        (np.bool_(True), "'m' must be a number, not bool"),
        (torch.tensor(1 + 2j), "'m' must be a number, not Tensor of torch.complex64"),
        (torch.tensor(True), "'m' must be a number, not Tensor of torch.bool"),
        (1 + 2j, "'m' must be a number, not complex"),
    ],
)
def test_a_value_that_is_not_one_real_number_is_refused_naming_its_key(value: Any, expected: str) -> None:
    """numpy's str_ was taken as a number and a complex one cut to its real part; a datetime or
    an object array failed with float()'s own TypeError or ValueError, naming no key."""
    run = Recording()
    with pytest.raises(trial.ReportError) as e:
        run.report({"val_f1": 0.5, "m": value})
    assert expected in str(e.value)
    assert run.sent == []


def test_real_numbers_of_numpy_and_torch_are_plain_numbers_and_a_huge_int_diverges() -> None:
    run = Recording()
    run.report({"val_f1": np.float16(0.5), "a": np.int64(3), "b": np.array(2.5), "c": torch.tensor([7])})
    result = run.sent[-1][0]
    assert (result["a"], result["b"], result["c"]) == (3, 2.5, 7) and type(result["a"]) is int
    with pytest.raises(trial.TrialDiverged):  # Ray's ASHA could not turn it into a float: the run died
        run.report({"val_f1": 10**400})
    assert run.sent[-1][0]["val_f1"] == -math.inf and run.sent[-1][0]["diverged"] is True


@pytest.mark.parametrize("key", ["__duplicate__", "__anything", "episodes_total", "timesteps_total"])
def test_rays_own_result_keys_and_dunder_names_are_refused(key: str) -> None:
    """``__duplicate__`` made Tune drop the row and end the whole run (the metric missing)."""
    run = Recording()
    with pytest.raises(trial.ReportError, match=f"'{key}' cannot be a metric name"):
        run.report({"val_f1": 0.5, key: 1.0})


def test_every_key_ray_tune_adds_to_a_result_is_known() -> None:
    from ray.tune.result import AUTO_RESULT_KEYS, DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT, TRIAL_ID

    from tuner.records import RAY_KEYS

    assert set(AUTO_RESULT_KEYS) | {DONE, RESULT_DUPLICATE, SHOULD_CHECKPOINT, TRIAL_ID} <= RAY_KEYS


def test_a_function_that_swallows_tuners_stop_is_stopped_again_and_stays_diverged() -> None:
    """A bare ``except:`` around ``run.report`` caught the divergence and reported on: the
    trial was ranked finished with its later values."""
    run = Recording()
    run.report({"val_f1": 0.5})
    for value in (math.nan, 0.9, 0.95):
        try:
            run.report({"val_f1": value})
        except BaseException:  # what the probe's function did
            pass
    assert [r["epoch"] for r, _ in run.sent] == [1, 2] and run.sent[-1][0]["diverged"] is True
    with pytest.raises(trial.TrialDiverged, match="turned non-finite at epoch 2"):
        run.report({"val_f1": 0.99})


def test_try_refuses_a_state_that_cannot_be_saved_as_a_trial_would() -> None:
    """``tuner try`` kept the state in memory, so a lambda in it passed; every trial of the
    run then failed and the run's message pointed back at ``tuner try``."""
    run = trial.LocalRun(write=lambda line: None, metric="val_f1", mode="max")
    with pytest.raises(trial.ReportError, match=r"the state cannot be saved \((AttributeError|PicklingError)"):
        run.report({"val_f1": 0.5}, state={"f": lambda: 1})
    good = trial.LocalRun(write=lambda line: None, metric="val_f1", mode="max")
    good.report({"val_f1": 0.5}, state={"w": torch.ones(2), "step": 3})
    fresh = trial.LocalRun(write=lambda line: None, metric="val_f1", mode="max")
    fresh.saved = good.saved
    assert fresh.restore()["step"] == 3 and torch.equal(fresh.restore()["w"], torch.ones(2))


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str fails")


def test_an_error_whose_text_cannot_be_made_is_still_described() -> None:
    """A user's exception whose ``__str__`` raises crashed ``tuner try``'s own error path with
    a second traceback."""
    from tuner.errors import message

    try:
        raise _Unprintable("x")
    except _Unprintable as e:
        assert failures.describe_error(e).startswith("_Unprintable: _Unprintable('x') (in test_an_error_whose_text")
        assert message(e) == "_Unprintable('x')"
