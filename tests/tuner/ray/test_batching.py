"""Trials send their results in batches that end where ASHA decides."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.ray import batching


def batched(script: list[Any], decisions: frozenset[int] = frozenset()) -> Any:
    """A batched trainable whose ``train()`` plays ``script`` (results, or exceptions to raise)."""

    def run_trial(config: dict[str, Any]) -> None:
        pass

    cls = batching.batched(run_trial, decisions)
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
    monkeypatch.setattr(batching, "RESULT_BATCH_S", 0.0)
    assert epochs_of(t.train_buffered()) == [4]


def test_a_failing_trial_sends_its_results_before_the_error() -> None:
    t = batched([r(1), r(2), RuntimeError("boom"), r(9)])
    assert epochs_of(t.train_buffered()) == [1, 2]
    with pytest.raises(RuntimeError, match="boom"):
        t.train_buffered()
    t = batched([RuntimeError("at once")])
    with pytest.raises(RuntimeError, match="at once"):
        t.train_buffered()
