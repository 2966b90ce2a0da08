"""One trial, as Ray Tune runs it: a plain function trainable.

Build the trial's configuration, train one epoch, evaluate, report ``train_loss``,
``val_loss``, ``val_acc`` and ``epoch`` with a checkpoint; repeat until ``train.epochs``
(or until ASHA stops it). A restored trial loads its last checkpoint and continues with
the same batches it would have seen. A trial whose loss turns NaN or infinite reports the
worst possible metrics with ``diverged: true`` and stops; the sweep goes on.

This module and :mod:`tuner.backend` are the only ones that touch Ray's API.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import ray
import torch
from ray import tune

from models.data import Dataset
from models.train import Trainer
from tuner.space import apply_params

CHECKPOINT_FILE = "state.pt"
# Worst possible value of each metric, reported by a diverged trial.
WORST = {"val_acc": 0.0, "val_loss": math.inf, "train_loss": math.inf}


def trial_device() -> torch.device:
    """The GPU Ray assigned this trial (Ray sets CUDA_VISIBLE_DEVICES to it, so it is
    ``cuda`` inside the process), or the CPU when Ray gave it none."""
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def node_id() -> str:
    """Ray's id of the node this trial runs on (nodes of one machine share an IP, not an id)."""
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (a direct call in a test)
        return ""


def trial_cpus() -> int:
    """The CPUs Ray reserved for this trial (at least 1)."""
    try:
        resources = tune.get_context().get_trial_resources().required_resources
        return max(1, int(resources.get("CPU", 1)))
    except Exception:  # outside a Tune session (a direct call in a test)
        return 1


def task(fn: Callable[..., Any], call: dict[str, Any], cpus: float, **shared: Any) -> Any:
    """A plain Ray task (see :func:`tuner.backend.run_tasks`): ``fn(**call, **shared)`` on the
    CPUs and the GPU Ray gave it, passed as ``device``."""
    torch.set_num_threads(max(1, int(cpus)))
    return fn(**call, **shared, device=trial_device())


def run_trial(config: dict[str, Any], *, base: dict[str, Any], data: Dataset) -> None:
    """Ray Tune's trainable: train ``base`` with the searched ``config`` applied.

    Args:
        config: the searched parameters, keyed by dotted path (``{"train.lr": 0.03}``).
        base: the sweep's resolved ``data``/``model``/``train`` sections.
        data: the data set without its test split, shipped through Ray's object store.
    """
    cfg = apply_params(base, config)
    threads = trial_cpus()
    torch.set_num_threads(threads)  # the trial's CPUs, not the node's: trials share a node
    device = trial_device()
    trainer = Trainer(cfg["model"], cfg["train"], data, device=device)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            # map_location: a trial restored on another node may have another device (a GPU's checkpoint on a CPU)
            trainer.load_state_dict(torch.load(Path(d) / CHECKPOINT_FILE, map_location=device, weights_only=False))
    epochs = int(cfg["train"]["epochs"])
    n_train = len(data.x_train)
    # Where the trial ran, reported with every epoch: a restored trial may continue elsewhere.
    where = {"node_id": node_id(), "device": trainer.device.type, "threads": threads}
    while trainer.epoch < epochs:
        start = time.perf_counter()
        m = trainer.step()
        seconds = time.perf_counter() - start
        if m.diverged:
            tune.report({**WORST, "epoch": m.epoch, "diverged": True, "epoch_s": seconds, **where})
            return
        metrics = {"train_loss": m.train_loss, "val_loss": m.val_loss, "val_acc": m.val_acc, "epoch": m.epoch,
                   "diverged": False, "epoch_s": seconds, "samples_per_s": n_train / max(seconds, 1e-9),
                   **where}
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as d:
            torch.save(trainer.state_dict(), os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
