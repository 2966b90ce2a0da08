"""The training loop: one model, one data set, an epoch at a time.

A :class:`Trainer` holds the model, the optimizer, the data as tensors on the device and
the shuffling generator. Its whole state round-trips through :meth:`Trainer.state_dict`,
so a trial restored from a checkpoint continues with the same batches it would have seen.
Nothing here knows about Ray: the trial in ``tuner`` drives it and reports its metrics.
"""

from __future__ import annotations

import math
import random
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager, Mapping

import numpy as np
import torch
from torch import nn

from models import build_model
from models.data import Dataset

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")
EVAL_BATCH = 4096


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch produced; ``diverged`` is True when a loss became NaN or infinite."""

    epoch: int
    train_loss: float
    val_loss: float
    val_acc: float
    diverged: bool


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: Any, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer a ``train`` section names: ``sgd`` (with ``momentum`` = β of the velocity
    average), ``adam`` or ``adamw`` (``beta1``, ``beta2``), all with ``lr`` and ``weight_decay``."""
    name, lr, wd = cfg["optimizer"], float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd)
    betas = (float(cfg.get("beta1", 0.9)), float(cfg.get("beta2", 0.999)))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(OPTIMIZERS)}")


class Trainer:
    """Trains ``model_cfg``'s network on ``data`` with ``train_cfg``'s optimizer and batches.

    Args:
        model_cfg: a sweep's resolved ``model`` section (see :func:`models.build_model`).
        train_cfg: a sweep's resolved ``train`` section: ``epochs``, ``batch_size``,
            ``optimizer``, ``lr``, ``lr_schedule`` (``constant``, or ``cosine``: decays to 0
            over ``epochs``), ``momentum``, ``beta1``, ``beta2``, ``weight_decay``, ``seed``
            and ``amp``.
        data: the data set; val metrics come from ``x_val``/``y_val``.
        device: where to train; ``None`` picks CUDA when torch sees a GPU, else the CPU.
        final: train on train+val (the final model) instead of train alone.
    """

    def __init__(self, model_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any], data: Dataset,
                 device: torch.device | str | None = None, final: bool = False) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.train_cfg = dict(train_cfg)
        self.seed = int(train_cfg.get("seed", 0))
        seed_everything(self.seed)
        self.model = build_model(model_cfg, data.input_shape, data.num_classes).to(self.device)
        self.optimizer = make_optimizer(self.model.parameters(), train_cfg)
        self.batch_size = int(train_cfg["batch_size"])
        self.epochs = int(train_cfg["epochs"])
        self.lr = float(train_cfg["lr"])
        self.lr_schedule = str(train_cfg.get("lr_schedule", "constant"))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}: one of {', '.join(LR_SCHEDULES)}")
        self.amp = bool(train_cfg.get("amp", False))
        if self.amp and self.device.type != "cuda":
            warnings.warn("train.amp: mixed precision needs CUDA; training in float32 on the CPU", stacklevel=2)
            self.amp = False
        x, y = data.train_and_val() if final else (data.x_train, data.y_train)
        self.x_train, self.y_train = self._tensor(x), self._tensor(y)
        self.x_val, self.y_val = self._tensor(data.x_val), self._tensor(data.y_val)
        self.generator = torch.Generator().manual_seed(self.seed)  # batch order; saved with the state
        self.epoch = 0
        self.loss_fn = nn.CrossEntropyLoss()

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _autocast(self) -> ContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

    def train_epoch(self) -> float:
        """One pass over the training data in shuffled mini-batches; returns the mean loss.

        Stops at the first non-finite batch loss and returns it (NaN or inf): the caller
        treats that as divergence.
        """
        self.model.train()
        if self.lr_schedule == "cosine":  # stateless: the epoch alone sets the rate, so restores need nothing more
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * self.epoch / max(self.epochs, 1)))
        n = len(self.x_train)
        order = torch.randperm(n, generator=self.generator).to(self.device)
        total, count = 0.0, 0
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if len(idx) < 2:  # BN cannot normalise a batch of one sample
                continue
            with self._autocast():
                loss = self.loss_fn(self.model(self.x_train[idx]), self.y_train[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                self.epoch += 1
                return value
            total += value * len(idx)
            count += len(idx)
        self.epoch += 1
        return total / max(count, 1)

    def evaluate(self, x: torch.Tensor | np.ndarray | None = None,
                 y: torch.Tensor | np.ndarray | None = None) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval mode (BN's running statistics).

        Defaults to the validation split.
        """
        x = self.x_val if x is None else (self._tensor(x) if isinstance(x, np.ndarray) else x.to(self.device))
        y = self.y_val if y is None else (self._tensor(y) if isinstance(y, np.ndarray) else y.to(self.device))
        return evaluate(self.model, x, y, amp=self.amp)

    def step(self) -> EpochMetrics:
        """Train one epoch, then evaluate on the validation split."""
        train_loss = self.train_epoch()
        if not math.isfinite(train_loss):
            return EpochMetrics(self.epoch, train_loss, math.inf, 0.0, True)
        val_loss, val_acc = self.evaluate()
        return EpochMetrics(self.epoch, train_loss, val_loss, val_acc, not math.isfinite(val_loss))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training is: weights (BN running
        statistics included), optimizer, epoch and the batch-order generator."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"])


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in eval mode on ``x``/``y`` (tensors on the
    model's device), in fixed batches of ``EVAL_BATCH``: the same data gives the same numbers."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
            logits = model(xb).float()
        loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return loss_sum / max(len(x), 1), correct / max(len(x), 1)


def default_device() -> torch.device:
    """CUDA when torch sees a GPU (under Ray: the one Ray assigned), else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
