"""The training loop: one model, one data set, an epoch at a time -- and the built-in trial
function :func:`fit` that a sweep without a ``function`` of its own trains.

A :class:`Trainer` holds the model, the optimizer, the data as tensors on the device and
the shuffling generator. Its whole state round-trips through :meth:`Trainer.state_dict`,
so a trial restored from a checkpoint continues with the same batches it would have seen.
The same :meth:`Trainer.epochs` loop serves a search trial, a retest and the final model.

Classification trains on cross-entropy and reports ``train_loss``, ``val_loss``,
``val_acc``; regression trains on the mean squared error of standardised targets and
reports ``train_loss``, ``val_loss`` (MSE), ``val_rmse``, ``val_mae``, ``val_r2``, all in the
targets' own units.

Precise BN statistics (``train.precise_bn: N``; Wu & Johnson, "Rethinking 'Batch' in
BatchNorm", 2021, https://arxiv.org/abs/2105.07576): before each validation the BN
population statistics are recomputed over N fixed training batches with the current
weights, instead of the exponential average over batches seen with older weights, which
lags and is noisy early in training -- exactly when ASHA judges a trial. A user's own trial
function gets the same with :func:`recompute_bn_stats` (any torch model, any batches).

Nothing here knows about Ray: :func:`fit` talks to its ``run`` (a ``tuner.Run``) only.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from . import LR_SCHEDULES, OPTIMIZERS, ModelError, build_model, check_model, is_user_model, optim
from .batchnorm import bn_layers, recompute_bn_stats
from .data import TASKS, Dataset

EVAL_BATCH = 4096
__all__ = [
    "Trainer",
    "fit",
    "evaluate",
    "make_optimizer",
    "recompute_bn_stats",
    "bn_layers",
    "OPTIMIZERS",
    "LR_SCHEDULES",
    "TASKS",
]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: Any, cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer a ``train`` section names: ``sgd`` (with ``momentum`` = β of the velocity
    average), ``adam`` or ``adamw`` (``beta1``, ``beta2``), all with ``lr`` and ``weight_decay``.

    torch.optim's, from :mod:`.optim`: without the compile guards whose first call imports
    ``torch._dynamo`` (1.5-2 s in every fresh trial process)."""
    name, lr, wd = cfg["optimizer"], float(cfg["lr"]), float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=float(cfg.get("momentum", 0.0)), weight_decay=wd)
    betas = (float(cfg.get("beta1", 0.9)), float(cfg.get("beta2", 0.999)))
    if name == "adam":
        return optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}: one of {', '.join(OPTIMIZERS)}")


class Trainer:
    """Trains ``model_cfg``'s network on ``data`` with ``train_cfg``'s optimizer and batches.

    Args:
        model_cfg: a sweep's resolved ``model`` section (see :func:`tuner.models.build_model`).
        train_cfg: a sweep's resolved ``train`` section: ``epochs``, ``batch_size``,
            ``optimizer``, ``lr``, ``lr_schedule`` (``constant``, or ``cosine``: decays to 0
            over ``epochs``), ``momentum``, ``beta1``, ``beta2``, ``weight_decay``, ``seed``,
            ``amp``, ``precise_bn`` (batches; 0: off).
        data: the data set; val metrics come from ``x_val``/``y_val``; its ``task`` decides the loss.
        device: where to train; ``None`` picks CUDA when torch sees a GPU, else the CPU.
        final: train on train+val (the final model) instead of train alone.
        seed: the initialisation and batch-order seed (default: ``train_cfg["seed"]``).
    """

    def __init__(
        self,
        model_cfg: Mapping[str, Any],
        train_cfg: Mapping[str, Any],
        data: Dataset,
        device: torch.device | str | None = None,
        final: bool = False,
        seed: int | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.seed = int(train_cfg.get("seed", 0) if seed is None else seed)
        self.task = data.task
        seed_everything(self.seed)
        self.model_name = str(model_cfg["name"])
        self.model = build_model(model_cfg, data.input_shape, data.num_outputs).to(self.device)
        if is_user_model(model_cfg):  # a user's network: its contract tried before any training
            check_model(self.model, data.input_shape, data.num_outputs, str(model_cfg["name"]))
        self.optimizer = make_optimizer(self.model.parameters(), train_cfg)
        self.batch_size = int(train_cfg["batch_size"])
        self.epochs_total = int(train_cfg["epochs"])
        self.lr = float(train_cfg["lr"])
        self.lr_schedule = str(train_cfg.get("lr_schedule", "constant"))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}: one of {', '.join(LR_SCHEDULES)}")
        self.amp = bool(train_cfg.get("amp", False))
        if self.amp and self.device.type != "cuda":
            warnings.warn("train.amp: mixed precision needs CUDA; training in float32 on the CPU", stacklevel=2)
            self.amp = False
        self.final = final
        x, y = data.train_and_val() if final else (data.x_train, data.y_train)
        self.x_train, self.y_train = self._tensor(x), self._tensor(y)
        self.x_val, self.y_val = self._tensor(data.x_val), self._tensor(data.y_val)
        self.x_test = None if data.x_test is None else self._tensor(data.x_test)
        self.y_test = None if data.y_test is None else self._tensor(data.y_test)
        # Regression trains on standardised targets (any scale trains alike) and reports in their units.
        if self.task == "regression":
            y64 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
            self.target_mean = torch.tensor(y64.mean(0), dtype=torch.float32, device=self.device)
            self.target_std = torch.tensor(
                np.where(y64.std(0) > 0, y64.std(0), 1.0), dtype=torch.float32, device=self.device
            )
        else:
            self.target_mean = self.target_std = None
        self.generator = torch.Generator().manual_seed(self.seed)  # batch order; saved with the state
        self.epoch = 0
        precise = int(train_cfg.get("precise_bn", 0) or 0)
        # the fixed batches precise BN re-estimates the statistics on: no RNG state to restore
        order = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(self.seed + 1))
        self.bn_batches = [
            order[i : i + self.batch_size].to(self.device)
            for i in range(0, min(precise * self.batch_size, len(order)), self.batch_size)
            if len(order[i : i + self.batch_size]) >= 2
        ]

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():  # a trial's data is read-only (Ray's object store); never written to
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
            return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _autocast(self) -> AbstractContextManager[Any]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to train on, the loss to report): cross-entropy twice, or the MSE of
        standardised targets and the MSE in the targets' units."""
        if self.task == "classification":
            loss = nn.functional.cross_entropy(out.float(), y)
            return loss, loss
        assert self.target_mean is not None and self.target_std is not None
        diff = out.float().reshape(len(y), -1) - (y.reshape(len(y), -1) - self.target_mean) / self.target_std
        loss = (diff**2).mean()
        return loss, ((diff.detach() * self.target_std) ** 2).mean()

    def train_epoch(self) -> float:
        """One pass over the training data in shuffled mini-batches; returns the mean loss (in
        the targets' units for regression).

        Stops at the first non-finite batch loss and returns it (NaN or inf): the caller
        treats that as divergence.
        """
        self.model.train()
        if self.lr_schedule == "cosine":  # stateless: the epoch alone sets the rate, so restores need nothing more
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * self.epoch / max(self.epochs_total, 1)))
        n = len(self.x_train)
        order = torch.randperm(n, generator=self.generator).to(self.device)
        total, count = 0.0, 0
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < 2:  # BN cannot normalise a batch of one sample
                continue
            with self._autocast():
                out = self.model(self.x_train[idx])
            loss, shown = self._loss(out, self.y_train[idx])
            if not loss.requires_grad:  # the network's output in training mode carries no gradient
                raise ModelError(
                    f"{self.model_name}: the network's output in training mode does not require grad "
                    f"(it is a {out.dtype} tensor): it must be a floating tensor computed from its parameters"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            value = float(shown.detach())
            if not math.isfinite(value):
                self.epoch += 1
                return value
            total += value * len(idx)
            count += len(idx)
        self.epoch += 1
        return total / max(count, 1)

    def precise_bn(self) -> None:
        """Re-estimate every BN layer's population statistics over the fixed precise-BN batches
        with the current weights (a no-op when ``precise_bn`` is 0 or the model has no BN)."""
        if self.bn_batches:
            with self._autocast():
                recompute_bn_stats(self.model, (self.x_train[idx] for idx in self.bn_batches))

    def evaluate(
        self,
        x: torch.Tensor | np.ndarray | None = None,
        y: torch.Tensor | np.ndarray | None = None,
        prefix: str = "val_",
    ) -> dict[str, float]:
        """The metrics in eval mode (BN's running statistics) on ``x``/``y`` (default: the
        validation split), keys prefixed with ``prefix``."""
        x = self.x_val if x is None else (self._tensor(x) if isinstance(x, np.ndarray) else x.to(self.device))
        y = self.y_val if y is None else (self._tensor(y) if isinstance(y, np.ndarray) else y.to(self.device))
        return evaluate(
            self.model,
            x,
            y,
            self.task,
            amp=self.amp,
            target_mean=self.target_mean,
            target_std=self.target_std,
            prefix=prefix,
        )

    def step(self, end: int | None = None) -> dict[str, float]:
        """Train one epoch and measure it: ``train_loss`` and (but for the final model) the
        validation metrics, re-estimating BN's statistics first when ``precise_bn`` is on; the
        test metrics too at epoch ``end`` (default: the budget) when the data holds a test
        split. A diverged epoch returns NaN for every metric but its non-finite ``train_loss``."""
        end = self.epochs_total if end is None else end
        train_loss = self.train_epoch()
        metrics = {"train_loss": train_loss}
        if not math.isfinite(train_loss):  # every metric it would have reported, none of them finite
            names = ("loss", "acc") if self.task == "classification" else ("loss", "rmse", "mae", "r2")
            return {**metrics, **({} if self.final else {f"val_{n}": math.nan for n in names})}
        if not self.final:
            self.precise_bn()
            metrics.update(self.evaluate())
        if self.epoch == end and self.x_test is not None and self.y_test is not None:
            metrics.update(self.evaluate(self.x_test, self.y_test, prefix="test_"))
        return metrics

    def epochs(self, epochs: int | None = None) -> Iterator[dict[str, float]]:
        """Train until ``epochs`` (default: the budget), yielding each epoch's :meth:`step`
        metrics and its ``samples_per_s``; nothing more is trained after a diverged epoch."""
        end = self.epochs_total if epochs is None else epochs
        while self.epoch < end:
            start = time.perf_counter()
            metrics = self.step(end)
            if not math.isfinite(metrics["train_loss"]):
                yield metrics
                return
            metrics["samples_per_s"] = len(self.x_train) / max(time.perf_counter() - start, 1e-9)
            yield metrics

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where training is: weights (BN running
        statistics included), optimizer, epoch and the batch-order generator."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"])


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str = "classification",
    amp: bool = False,
    target_mean: torch.Tensor | None = None,
    target_std: torch.Tensor | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """``model``'s metrics in eval mode on ``x``/``y`` (tensors on its device), in fixed batches of
    ``EVAL_BATCH`` (the same data gives the same numbers): ``loss`` and ``acc`` for
    classification; ``loss`` (MSE), ``rmse``, ``mae`` and ``r2`` for regression, in the
    targets' units (``target_mean``/``target_std`` undo the training's standardisation)."""
    model.eval()
    n = max(len(x), 1)
    if task == "classification":
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), EVAL_BATCH):
            xb, yb = x[start : start + EVAL_BATCH], y[start : start + EVAL_BATCH]
            with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
                logits = model(xb).float()
            loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        return {f"{prefix}loss": loss_sum / n, f"{prefix}acc": correct / n}
    preds = []
    for start in range(0, len(x), EVAL_BATCH):
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
            out = model(x[start : start + EVAL_BATCH]).float()
        preds.append(out.reshape(len(out), -1))
    pred = torch.cat(preds).double()
    if target_mean is not None and target_std is not None:
        pred = pred * target_std.double() + target_mean.double()
    target = y.reshape(len(y), -1).double()
    diff = pred - target
    mse = float((diff**2).mean())
    ss_res = (diff**2).sum(0)
    ss_tot = ((target - target.mean(0)) ** 2).sum(0)
    r2 = float(torch.where(ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), torch.zeros_like(ss_tot)).mean())
    return {
        f"{prefix}loss": mse,
        f"{prefix}rmse": math.sqrt(mse) if math.isfinite(mse) else math.inf,
        f"{prefix}mae": float(diff.abs().mean()),
        f"{prefix}r2": r2,
    }


def default_device() -> torch.device:
    """CUDA when torch sees a GPU (under Ray: the one Ray assigned), else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def fit(config: Mapping[str, Any], run: Any) -> None:
    """The built-in trial function: train ``config["model"]`` with ``config["train"]`` on
    ``run.data``, one ``run.report`` an epoch (checkpointing the whole training state when
    the run asks for it), continuing from ``run.restore()`` after a restart.

    ``run`` is a ``tuner.Run``; this is a trial function like any user's.
    """
    trainer = Trainer(config["model"], config["train"], run.data, device=run.device, seed=run.seed)
    state = run.restore()
    if state is not None:
        trainer.load_state_dict(state)
    for metrics in trainer.epochs():
        run.report(metrics, state=trainer.state_dict)


def model_state(trainer: Trainer) -> dict[str, Any]:
    """What a model file keeps of a trained network besides its weights: the task and the
    regression targets' standardisation."""
    out: dict[str, Any] = {"task": trainer.task}
    if trainer.target_mean is not None and trainer.target_std is not None:
        out["target_mean"] = trainer.target_mean.cpu().tolist()
        out["target_std"] = trainer.target_std.cpu().tolist()
    return out


TrialFunction = Callable[[Mapping[str, Any], Any], None]
