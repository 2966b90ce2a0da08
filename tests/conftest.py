"""Shared fixtures: one local Ray instance per test session, tiny sweep files, a private data cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# A test parametrized with ``GPUS`` (GPUs a trial) or ``DEVICES`` (a torch device) runs on the
# CPU and, on a machine with CUDA, on a GPU too (CI has none: the GPU case shows as skipped;
# BENCHMARKS.md g says where it ran).
_NEEDS_CUDA = pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
GPUS = [pytest.param(0, id="cpu"), pytest.param(1, id="gpu", marks=_NEEDS_CUDA)]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=_NEEDS_CUDA)]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Generated data sets go to a per-session folder, not the user's ~/.cache."""
    os.environ["TUNER_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def ray_session() -> Any:
    """One local Ray instance (2 CPUs, token auth on) for every test that runs trials."""
    from tuner.ray import cluster

    cluster.connect(num_cpus=2)
    yield
    cluster.disconnect()


def tiny_sweep(**overrides: Any) -> dict[str, Any]:
    """A sweep that runs in seconds: synthetic data, a small BN-MLP, a few epochs."""
    sweep: dict[str, Any] = {
        "name": "tiny",
        "metric": "val_acc",
        "mode": "max",
        "data": {"name": "synthetic", "n_samples": 300, "n_features": 8, "n_classes": 3, "seed": 0},
        "model": {"name": "mlp", "hidden": [16]},
        "train": {"epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
        "search": {
            "method": "random",
            "num_samples": 4,
            "seed": 0,
            "parameters": {
                "train.lr": {"distribution": "log_uniform", "min": 1e-3, "max": 0.5},
                "train.momentum": {"distribution": "one_minus_log_uniform", "min": 0.5, "max": 0.99},
            },
        },
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        "resources": {"cpu": 1, "gpu": 0},
    }
    for key, value in overrides.items():
        node = sweep
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return sweep


def tiny_function_sweep(function: str, **keys: Any) -> dict[str, Any]:
    """:func:`tiny_sweep` for a user's trial function (``module:name``): no built-in model or
    training keys, and ``keys`` set at the top level."""
    raw = tiny_sweep()
    for key in ("model", "train"):
        del raw[key]
    raw.update(function=function, **keys)
    return raw


@pytest.fixture
def write_sweep(tmp_path: Path) -> Callable[..., Path]:
    """Write a sweep (a tiny one with dotted-key overrides, or a given mapping/text) to a file."""

    def write(content: dict[str, Any] | str | None = None, name: str = "sweep.yaml", **overrides: Any) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(
                yaml.safe_dump(content if content is not None else tiny_sweep(**overrides), sort_keys=False)
            )
        return path

    return write


@pytest.fixture(scope="session")
def tracked_run(ray_session: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real tiny sweep (2 trials, 2 epochs), logged to a local MLflow store when MLflow
    is installed, shared by the tests of what a sweep leaves behind (TensorBoard files,
    MLflow runs, the report): one sweep's Ray time for all of them."""
    import importlib.util

    from tuner.runner import run_sweep
    from tuner.spec import from_dict

    root = tmp_path_factory.mktemp("tracked")
    sweep = from_dict(
        tiny_sweep(**{"search.num_samples": 2, "train.epochs": 2, "scheduler.name": "none"}),
        source=str(root / "tiny.yaml"),
    )
    uri = f"sqlite:///{root / 'mlflow.db'}" if importlib.util.find_spec("mlflow") else None
    cwd = os.getcwd()
    os.chdir(root)  # a local MLflow store keeps its artifacts under ./mlruns
    try:
        summary = run_sweep(
            sweep,
            storage=root / "runs",
            write=lambda _: None,
            mlflow_uri=uri,
            mlflow_experiment="bn-sweeps" if uri else None,
        )
    finally:
        os.chdir(cwd)
    return {"summary": summary, "mlflow_uri": uri, "root": root}
