"""The trial's device, CPUs and whereabouts."""

from __future__ import annotations

import pytest
import torch

from tuner import trial


def test_the_trial_uses_the_gpu_ray_assigned_and_else_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trial.ray, "get_gpu_ids", lambda: [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert trial.trial_device() == torch.device("cpu")  # a GPU on the node, but not this trial's
    # Ray hides every other GPU (CUDA_VISIBLE_DEVICES): "cuda" is the one it assigned, shared or whole
    monkeypatch.setattr(trial.ray, "get_gpu_ids", lambda: [2])
    assert trial.trial_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # assigned, but torch has no CUDA
    assert trial.trial_device() == torch.device("cpu")


def test_outside_a_tune_session_a_trial_has_one_cpu() -> None:
    assert trial.trial_cpus() == 1
