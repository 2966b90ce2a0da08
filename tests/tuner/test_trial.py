"""The trial on a real local Ray instance: checkpoints and restoring a failed trial."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import tiny_sweep
from tuner import backend, trial
from tuner.results import load_trials
from tuner.runner import prepare_data
from tuner.space import Parameter
from tuner.spec import from_dict

pytestmark = pytest.mark.usefixtures("ray_session")

EPOCHS = 6
BATCHES_PER_EPOCH = 6  # 192 training samples of the tiny synthetic set in batches of 32


def run_flaky(tmp_path: Path, name: str, **trial_args: Any) -> list[dict[str, Any]]:
    """One trial whose model raises once in epoch 4; returns its result.json rows."""
    marker = tmp_path / f"{name}.failed"
    sweep = from_dict(tiny_sweep(**{
        "model": {"name": "tests.fixtures_data:flaky_net",
                  "kwargs": {"marker": str(marker), "fail_at_batch": 3 * BATCHES_PER_EPOCH + 2}},
        "train.epochs": EPOCHS, "scheduler.name": "none"}))
    backend.run_round(backend.RoundSettings(
        storage=tmp_path, name=name, trainable=trial.run_trial,
        trainable_args={"base": sweep.base_config(), "data": prepare_data(sweep).without_test(), **trial_args},
        params=[Parameter("train.lr", values=(0.05,))], method="grid", num_samples=1, seed=0,
        metric="val_acc", mode="max", scheduler=backend.scheduler("none", EPOCHS, 1, 2, 1),
        cpu=1, gpu=0, max_failures=1))
    assert marker.exists(), "the planned failure did not happen"
    (result,) = (tmp_path / name).glob("*/result.json")
    return [json.loads(line) for line in result.read_text().splitlines()]


def test_a_failed_trial_continues_from_its_last_checkpoint_with_the_same_batches(tmp_path: Path) -> None:
    assert trial.CHECKPOINT_EVERY_S > 0
    every_epoch = run_flaky(tmp_path, "every-epoch", checkpoint_every_s=0)
    # restored from the checkpoint of epoch 3: epochs 1-3 are not trained again
    assert [r["epoch"] for r in every_epoch] == [1, 2, 3, 4, 5, 6]
    assert [r["checkpoint_dir_name"] is not None for r in every_epoch] == [True] * 6
    # the default interval (10 s) took no checkpoint in this short trial: it starts again
    default = run_flaky(tmp_path, "default")
    assert [r["epoch"] for r in default] == [1, 2, 3, 1, 2, 3, 4, 5, 6]
    assert all(r["checkpoint_dir_name"] is None for r in default)
    # both end exactly where an uninterrupted trial ends: same weights, same batch order
    assert every_epoch[-1]["val_acc"] == default[-1]["val_acc"]
    assert every_epoch[-1]["train_loss"] == pytest.approx(default[-1]["train_loss"], rel=1e-6)
    (record,) = load_trials(tmp_path / "default", 0, EPOCHS)
    assert record.status == "finished" and [h["epoch"] for h in record.history] == list(range(1, EPOCHS + 1))

