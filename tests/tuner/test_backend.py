"""The Ray side of the driver: ASHA's state across a restore, interruption detection, the
token-authentication rule, the local instance's dashboard."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import ray.cloudpickle as cloudpickle

from tuner import backend
from tuner.errors import InputError


def asha() -> backend.ResumableASHA:
    s = backend.scheduler("asha", max_t=8, grace_period=1, reduction_factor=2, brackets=1)
    assert isinstance(s, backend.ResumableASHA)
    s.set_search_properties("val_acc", "max")
    return s


def trial(i: int) -> Any:
    return SimpleNamespace(trial_id=f"t{i}")


def feed(s: backend.ResumableASHA, results: list[tuple[int, int, float]]) -> list[str]:
    """(trial, epoch, val_acc) results in order; returns ASHA's decisions."""
    return [s.on_trial_result(None, trial(i), {"training_iteration": e, "val_acc": acc}) for i, e, acc in results]


def test_asha_rung_records_survive_a_restore() -> None:
    first = asha()
    for i in range(4):
        first.on_trial_add(None, trial(i))
    feed(first, [(0, 1, 0.9), (1, 1, 0.2), (2, 1, 0.8), (0, 2, 0.95)])
    state = first.rungs_state()
    assert {r["milestone"]: r["recorded"] for r in state["brackets"][0]}[1.0] == {"t0": 0.9, "t1": 0.2, "t2": 0.8}
    assert state["trial_bracket"] == {f"t{i}": 0 for i in range(4)}
    # a fresh scheduler (what Tune unpickles on restore) knows nothing; given the state, it
    # decides the next results exactly as the first one does
    fresh, restored = asha(), asha()
    restored.set_rungs_state(state)
    for s in (fresh, restored):
        s.on_trial_add(None, trial(3))
    assert restored.rungs_state()["brackets"] == state["brackets"]
    later = [(3, 1, 0.3)]  # below the rung's median (0.8)
    assert feed(restored, later) == feed(first, later) == ["STOP"]
    assert feed(fresh, later) == ["CONTINUE"]  # without its records ASHA stops nothing


def test_asha_state_of_another_sweep_is_refused() -> None:
    state = asha().rungs_state()
    other = backend.scheduler("asha", max_t=9, grace_period=3, reduction_factor=3, brackets=1)
    with pytest.raises(ValueError, match="does not match the saved rung"):
        other.set_rungs_state(state)


def test_the_state_callback_and_the_tuner_share_one_scheduler_after_unpickling() -> None:
    s = asha()
    s.on_trial_add(None, trial(0))
    feed(s, [(0, 1, 0.5)])
    callback = backend._SchedulerState(s)
    # Tune pickles its tune_config (the scheduler) and run_config (the callbacks) in one piece
    scheduler2, callback2 = cloudpickle.loads(cloudpickle.dumps((s, callback)))
    assert callback2.scheduler is scheduler2
    saved = callback2.get_state()
    assert saved == {"asha": s.rungs_state()}
    empty = asha()
    backend._SchedulerState(empty).set_state(saved)
    assert empty.rungs_state()["brackets"] == s.rungs_state()["brackets"]
    assert backend.scheduler("none", 8, 1, 2, 1).__class__.__name__ == "FIFOScheduler"


def test_an_experiment_ended_by_ctrl_c_is_told_from_a_finished_one() -> None:
    def trials(*statuses: str) -> list[Any]:
        return [SimpleNamespace(trial_id=f"t{i}", status=s) for i, s in enumerate(statuses)]

    finished = backend._Outcome()
    finished.on_step_end(1, trials("TERMINATED", "ERROR"))
    finished.on_experiment_end(trials("TERMINATED", "ERROR"))
    assert finished.unfinished == 0
    interrupted = backend._Outcome()
    interrupted.on_step_end(1, trials("RUNNING", "TERMINATED", "PENDING"))
    interrupted.on_experiment_end(trials("TERMINATED", "TERMINATED", "PENDING"))  # after Tune's cleanup
    assert interrupted.unfinished == 2
    with pytest.raises(KeyboardInterrupt):
        backend._raise_if_interrupted(interrupted)
    backend._raise_if_interrupted(finished)


def test_the_progress_printer_is_not_pickled_into_the_experiment() -> None:
    lines: list[str] = []
    cb = backend._ProgressCallback(lambda events: lines.append("x"), 0.0)
    copy = cloudpickle.loads(cloudpickle.dumps(cb))
    assert copy.on_step is None and cb.on_step is not None
    copy.on_experiment_end([])  # without a printer: silent


def test_token_authentication_cannot_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(InputError, match="RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on"):
        backend.connect()


def test_a_run_with_authentication_disabled_exits_2_and_writes_nothing(write_sweep: Any, tmp_path: Any,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tuner.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert main(["run", str(write_sweep()), "--storage", str(tmp_path / "runs")]) == 2
    assert "RAY_AUTH_MODE=disabled" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("ray_session")
def test_the_local_instance_keeps_token_auth_on_and_its_dashboard_off_and_on_loopback() -> None:
    import ray
    from ray._raylet import AuthenticationMode, get_authentication_mode

    params = ray._private.worker._global_node._ray_params
    assert params.include_dashboard is False and params.dashboard_host == "127.0.0.1"
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert backend.autoscaler_node_types() == []  # a local instance has no autoscaler to report


def batched(script: list[Any], decisions: frozenset[int] = frozenset()) -> Any:
    """A batched trainable whose ``train()`` plays ``script`` (results, or exceptions to raise)."""

    def run_trial(config: dict[str, Any]) -> None:
        pass

    cls = backend._batched_results(run_trial, decisions)
    assert cls.__name__ == "run_trial"  # trial folders keep their names
    t = cls.__new__(cls)
    steps = iter(script)

    def train() -> dict[str, Any]:
        step = next(steps)
        if isinstance(step, Exception):
            raise step
        return step

    t.train = train
    return t


def r(epoch: int, **extra: Any) -> dict[str, Any]:
    return {"training_iteration": epoch, "done": False, **extra}


def epochs_of(results: list[dict[str, Any]]) -> list[Any]:
    return [x.get("training_iteration", "dup") for x in results]


def test_a_batch_ends_where_asha_decides_and_at_the_trial_end() -> None:
    t = batched([r(1), r(2), r(3), r(4), r(5), {"__duplicate__": True}], decisions=frozenset({2, 6}))
    assert epochs_of(t.train_buffered(1000, 100)) == [1, 2]  # ASHA judges epoch 2: nothing trained past it
    assert epochs_of(t.train_buffered(1000, 100)) == [3, 4, 5, "dup"]


def test_a_checkpoint_travels_alone_and_a_batch_is_bounded_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    t = batched([r(1, should_checkpoint=True), r(2), r(3, should_checkpoint=True), r(4), r(5)])
    assert epochs_of(t.train_buffered()) == [1]
    assert epochs_of(t.train_buffered()) == [2]  # the checkpoint of epoch 3 is held back...
    assert epochs_of(t.train_buffered()) == [3]  # ...and sent on its own
    monkeypatch.setattr(backend, "RESULT_BATCH_S", 0.0)
    assert epochs_of(t.train_buffered()) == [4]


def test_a_failing_trial_sends_its_results_before_the_error() -> None:
    t = batched([r(1), r(2), RuntimeError("boom"), r(9)])
    assert epochs_of(t.train_buffered()) == [1, 2]
    with pytest.raises(RuntimeError, match="boom"):
        t.train_buffered()
    t = batched([RuntimeError("at once")])
    with pytest.raises(RuntimeError, match="at once"):
        t.train_buffered()


def test_the_epochs_asha_decides_at() -> None:
    assert backend.decision_epochs(backend.scheduler("asha", 20, 2, 3, 1)) == {2, 6, 18}
    assert backend.decision_epochs(backend.scheduler("asha", 8, 1, 2, 2)) == {1, 2, 4, 8}
    assert backend.decision_epochs(backend.scheduler("none", 8, 1, 2, 1)) == frozenset()
