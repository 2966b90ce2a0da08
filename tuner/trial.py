"""One trial, as Ray Tune runs it: a plain function trainable.

Build the trial's configuration, train one epoch, evaluate, report ``train_loss``,
``val_loss``, ``val_acc`` and ``epoch``; repeat until ``train.epochs`` (or until ASHA stops
it). A report carries a checkpoint when :class:`CheckpointPolicy` says one is due: the first
epoch's, then once the training since the last is ``CHECKPOINT_RATIO`` times what that
checkpoint cost. A restored trial loads its last checkpoint and continues with the same
batches it would have seen. A trial whose loss turns NaN
or infinite reports the worst possible metrics with ``diverged: true`` and stops; the sweep
goes on.

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
# A checkpoint costs the trial a torch.save and Ray's copy into the trial folder while it
# waits, and the driver the bookkeeping of it: tens of ms, a third of a short epoch when taken
# every epoch. Taken once the training since the last is CHECKPOINT_RATIO times that cost,
# checkpoints cost at most 1/CHECKPOINT_RATIO of a trial's time, and a restored trial redoes
# at most CHECKPOINT_RATIO checkpoints' worth of training (about a second here). The first
# epoch always checkpoints: a trial checkpoint also makes Ray Tune save the experiment's
# state (num_to_keep=1), so every started trial is in that state at once, as `tuner resume`
# needs after a driver crash.
CHECKPOINT_RATIO = 25.0
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


class CheckpointPolicy:
    """When a trial checkpoints: at its first report, then once the seconds since its last
    checkpoint reach ``ratio`` × what that checkpoint cost (wall seconds, save and report);
    or, when ``every_s`` is given, every ``every_s`` seconds (0: every epoch)."""

    def __init__(self, every_s: float | None = None, ratio: float = CHECKPOINT_RATIO,
                 now: float | None = None) -> None:
        self.every_s, self.ratio = every_s, ratio
        self.cost_s: float | None = None  # of the last checkpoint; None before the first
        self.since = time.monotonic() if now is None else now

    def due(self, now: float | None = None) -> bool:
        """Whether the report about to be made should carry a checkpoint."""
        if self.every_s is None and self.cost_s is None:
            return True
        interval = self.every_s if self.every_s is not None else self.ratio * (self.cost_s or 0.0)
        return (time.monotonic() if now is None else now) - self.since >= interval

    def taken(self, started: float, now: float | None = None) -> None:
        """A checkpoint begun at ``started`` (monotonic seconds) is done."""
        self.since = time.monotonic() if now is None else now
        self.cost_s = max(self.since - started, 0.0)


def run_trial(config: dict[str, Any], *, base: dict[str, Any], data: Dataset,
              checkpoint_every_s: float | None = None) -> None:
    """Ray Tune's trainable: train ``base`` with the searched ``config`` applied.

    Args:
        config: the searched parameters, keyed by dotted path (``{"train.lr": 0.03}``).
        base: the sweep's resolved ``data``/``model``/``train`` sections.
        data: the data set without its test split, shipped through Ray's object store.
        checkpoint_every_s: a fixed interval between checkpoints (0: every epoch) instead of
            :class:`CheckpointPolicy`'s ratio to their cost.
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
    policy = CheckpointPolicy(checkpoint_every_s)
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
        if not policy.due():
            tune.report(metrics)
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as d:
            torch.save(trainer.state_dict(), os.path.join(d, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
        policy.taken(started)
