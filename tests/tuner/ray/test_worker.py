"""A trial on Ray: its device, CPUs and whereabouts; its checkpoints, and restoring a failed
trial from them on a real local Ray instance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import tiny_sweep
from tuner import datasets
from tuner.ray import experiment, worker
from tuner.ray.search import RoundSearcher
from tuner.results import load_trials
from tuner.space import Parameter
from tuner.spec import SchedulerSpec, from_dict


def test_the_trial_uses_the_gpu_ray_assigned_and_else_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker.ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert worker.trial_device() == torch.device("cpu")  # a GPU on the node, but not this trial's
    # Ray hides every other GPU (CUDA_VISIBLE_DEVICES): "cuda" is the one it assigned, shared or whole
    monkeypatch.setattr(worker.ray, "get_gpu_ids", lambda: [2])
    assert worker.trial_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # assigned, but torch has no CUDA
    assert worker.trial_device() == torch.device("cpu")


def test_outside_a_tune_session_a_trial_has_one_cpu() -> None:
    assert worker.trial_cpus() == 1


EPOCHS = 6
BATCHES_PER_EPOCH = 6  # 192 training samples of the tiny synthetic set in batches of 32


def run_flaky(tmp_path: Path, name: str, **trial_args: Any) -> list[dict[str, Any]]:
    """One trial whose model raises once in epoch 4; returns its result.json rows."""
    marker = tmp_path / f"{name}.failed"
    sweep = from_dict(
        tiny_sweep(
            **{
                "model": {
                    "name": "tests.fixtures_data:flaky_net",
                    "kwargs": {"marker": str(marker), "fail_at_batch": 3 * BATCHES_PER_EPOCH + 2},
                },
                "train.epochs": EPOCHS,
                "scheduler.name": "none",
            }
        )
    )
    experiment.run_experiment(
        experiment.ExperimentSettings(
            storage=tmp_path,
            name=name,
            trial_args={
                "function": sweep.trainer,
                "base": sweep.base_config(),
                "data": datasets.load(sweep).without_test(),
                "metric": "val_acc",
                "mode": "max",
                "seed": 0,
                **trial_args,
            },
            searcher=RoundSearcher(
                [Parameter("train.lr", values=(0.05,))], "grid", [1], seed=0, metric="val_acc", mode="max"
            ),
            num_samples=1,
            metric="val_acc",
            mode="max",
            scheduler=SchedulerSpec("none", 1, 2, 1, EPOCHS),
            cpu=1,
            gpu=0,
            max_failures=1,
        )
    )
    assert marker.exists(), "the planned failure did not happen"
    (result,) = (tmp_path / name).glob("*/result.json")
    return [json.loads(line) for line in result.read_text().splitlines()]


@pytest.mark.usefixtures("ray_session")
def test_a_failed_trial_continues_from_its_last_checkpoint_with_the_same_batches(tmp_path: Path) -> None:
    every_epoch = run_flaky(tmp_path, "every-epoch", checkpoint_every_s=0)
    # restored from the checkpoint of epoch 3: epochs 1-3 are not trained again
    assert [r["epoch"] for r in every_epoch] == [1, 2, 3, 4, 5, 6]
    assert [r["checkpoint_dir_name"] is not None for r in every_epoch] == [True] * 6
    # a trial that took no checkpoint before it failed starts again from its first epoch
    # (checkpoint_every_s=1e9: no checkpoint, not even the first epoch's)
    default = run_flaky(tmp_path, "default", checkpoint_every_s=1e9)
    assert [r["epoch"] for r in default] == [1, 2, 3, 1, 2, 3, 4, 5, 6]
    assert all(r["checkpoint_dir_name"] is None for r in default)
    # both end exactly where an uninterrupted trial ends: same weights, same batch order
    assert every_epoch[-1]["val_acc"] == default[-1]["val_acc"]
    assert every_epoch[-1]["train_loss"] == pytest.approx(default[-1]["train_loss"], rel=1e-6)
    (record,) = load_trials(tmp_path / "default", 0, EPOCHS)
    assert record.status == "finished" and [h["epoch"] for h in record.history] == list(range(1, EPOCHS + 1))
