"""The experiment's settings that keep the driver's cost per trial flat."""

from __future__ import annotations

from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

from tuner.ray.experiment import SNAPSHOT_FLOOR_S, snapshot_floor


def test_snapshots_come_every_half_second_while_cheap_and_never_cost_more_than_a_twentieth() -> None:
    snapshot_floor()
    manager = _ExperimentCheckpointManager(storage=None, checkpoint_period="auto")
    manager._update_auto_checkpoint_time(0.001)  # a small sweep: fresh state for `tuner resume`
    assert manager._checkpoint_period == SNAPSHOT_FLOOR_S == 0.5
    manager._update_auto_checkpoint_time(0.2)  # 10,000 trials: 0.2 s a snapshot, at most 5% of the time
    assert manager._checkpoint_period == 0.2 * 19
    fixed = _ExperimentCheckpointManager(storage=None, checkpoint_period=3.0)
    fixed._update_auto_checkpoint_time(1.0)  # a user's own fixed period is left alone
    assert fixed._checkpoint_period == 3.0
    snapshot_floor()  # idempotent
    assert _ExperimentCheckpointManager._tuner_floor_s == 0.5
