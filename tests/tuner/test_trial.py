"""The trial protocol a function sees: checkpoints by cost, reports checked, divergence."""

from __future__ import annotations

import pytest

from tuner import trial


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
