"""A user's own training function for tuner: a BN regressor with its own loss and metrics.

    tuner try examples/regression/sweep.yaml --epochs 3     # one trial here, no Ray
    tuner run examples/regression/sweep.yaml                # the sweep

``fit(config, run)`` trains on ``run.data`` (the sweep's ``data``: scikit-learn's diabetes
set, loaded once by tuner and shared by every trial) with a Huber loss on standardised
targets -- not the built-in trainer's MSE -- and reports ``val_rmse`` (the sweep's metric),
``val_mae``, ``val_within_10pct`` (a metric of its own: the fraction of predictions within
10% of the target) and ``train_loss`` once an epoch. On the last epoch of a retest (when
``run.data`` holds the test split) it also reports ``test_rmse`` and ``test_mae``. Its whole
training state goes with each report (as a callable: tuner saves it only when a checkpoint
is due), and ``run.restore()`` continues a restarted trial from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

import models  # this folder's models.py, not tuner's (tuner's is tuner.models)


def fit(config: dict[str, Any], run: Any) -> None:
    """Train one configuration, reporting once an epoch (see the module docstring)."""
    data = run.data
    if data is None:
        raise ValueError("this function needs the sweep's data section (e.g. data: {name: diabetes})")
    torch.manual_seed(run.seed)
    device = run.device
    x, y = _tensor(data.x_train, device), _tensor(data.y_train, device).reshape(len(data.y_train), -1)
    mean, std = y.mean(0), y.std(0).clamp_min(1e-8)  # the loss sees standardised targets
    net = models.BNRegressor(x.shape[1], y.shape[1], config["hidden"], bn_momentum=config["bn_momentum"]).to(device)
    optim = torch.optim.SGD(
        net.parameters(), lr=config["optim"]["lr"], momentum=config["optim"]["momentum"], nesterov=True
    )
    loss_fn = nn.HuberLoss(delta=config["loss"]["delta"])
    order = torch.Generator().manual_seed(run.seed)
    start = 0

    state = run.restore()  # a restarted trial goes on from its last checkpoint
    if state is not None:
        net.load_state_dict(state["net"])
        optim.load_state_dict(state["optim"])
        order.set_state(state["order"])
        start = state["epoch"]

    def snapshot() -> dict[str, Any]:  # called by tuner only when a checkpoint is due
        return {"net": net.state_dict(), "optim": optim.state_dict(), "order": order.get_state(), "epoch": epoch}

    batch = int(config["batch_size"])
    for epoch in range(start + 1, int(config["epochs"]) + 1):
        net.train()
        total, seen = 0.0, 0
        for idx in torch.randperm(len(x), generator=order).split(batch):
            if len(idx) < 2:  # BN cannot normalise a batch of one
                continue
            loss = loss_fn(net(x[idx]), (y[idx] - mean) / std)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        metrics = {"train_loss": total / max(seen, 1), **_scores(net, data.x_val, data.y_val, mean, std, "val_")}
        if epoch == config["epochs"] and data.x_test is not None:  # a retest hands the test split in
            metrics.update(_scores(net, data.x_test, data.y_test, mean, std, "test_"))
        run.report(metrics, state=snapshot)


@torch.no_grad()
def _scores(net: nn.Module, x: np.ndarray, y: np.ndarray, mean: Any, std: Any, prefix: str) -> dict[str, float]:
    """RMSE, MAE and the fraction within 10% of the target, in the target's own units."""
    net.eval()
    device = mean.device
    target = _tensor(y, device).reshape(len(y), -1)
    pred = net(_tensor(x, device)) * std + mean
    err = pred - target
    rmse = float(err.pow(2).mean().sqrt())
    return {
        f"{prefix}rmse": rmse if math.isfinite(rmse) else math.inf,
        f"{prefix}mae": float(err.abs().mean()),
        f"{prefix}within_10pct": float((err.abs() <= 0.1 * target.abs()).float().mean()),
    }


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)
