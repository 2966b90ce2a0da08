"""Precise BatchNorm statistics (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021,
https://arxiv.org/abs/2105.07576): recompute a BN layer's population mean and variance with
the model's current weights, for evaluation at an ASHA rung or after training.

Used by :class:`tuner.models.train.Trainer` (``train.precise_bn``) and callable from a
user's own trial function on any torch model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

__all__ = ["bn_layers", "recompute_bn_stats"]


def bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BN layer of ``model`` that keeps population statistics for eval mode (a layer
    built with ``track_running_stats=False`` normalises with each batch's own, even in eval)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable[Any], max_batches: int | None = None) -> int:
    """Precise BN statistics: set every BN layer's population mean and variance (what eval
    mode normalises with) to their equal-weight average over ``batches``, computed with the
    model's current weights (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021).

    During training a BN layer keeps an exponential average of batch statistics computed with
    older weights, which lags and is noisy early in training; call this after training (or
    before each validation) in a user's trial function, e.g.::

        from tuner.models.batchnorm import recompute_bn_stats

        recompute_bn_stats(model, (x for x, _ in train_loader), max_batches=20)
        model.eval()  # validate with the re-estimated statistics

    Args:
        model: any torch module; its BN layers (``BatchNorm1d/2d/3d``, ``SyncBatchNorm``)
            that track running statistics are re-estimated, nothing else changes
            (weights, gradients, the optimizer and the layers' momentum are untouched).
        batches: training inputs, one mini-batch an item: a tensor, or a tuple/list whose
            first element is the input (as a ``DataLoader`` yields ``(x, y)``). Each batch is
            moved to the device of the model's first parameter. Batches of at least 2
            samples, as in training; use the training distribution, not the validation set.
        max_batches: stop after this many batches (None: every batch of ``batches``).

    Returns:
        The number of batches used (0 when the model has no such BN layer: nothing is read).

    Raises:
        ValueError: ``batches`` held no batch, ``max_batches`` < 1, or a lazy BN layer
            (``LazyBatchNorm1d``...) has not seen a batch yet; the statistics are
            left as they were (as they are on any error raised by the forward passes).

    Every module's train/eval mode is restored afterwards, each its own (a layer a user put
    in eval mode in a training model stays there).
    """
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"max_batches: {max_batches} must be >= 1 (or None: every batch)")
    bns = bn_layers(model)
    if not bns:
        return 0
    for name, bn in model.named_modules():
        if bn in bns and is_lazy(bn.running_mean):
            raise ValueError(
                f"recompute_bn_stats: BN layer {name or 'model'!r} is lazy and has not seen a batch yet; "
                "run one forward pass first"
            )
    device = next((p.device for p in model.parameters()), None)
    saved = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in bns]
    momenta = [bn.momentum for bn in bns]
    modes = [(m, m.training) for m in model.modules()]  # each module's own: a frozen BN layer stays in eval
    used = 0
    try:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # None: a cumulative (equal-weight) average over the batches
        model.train()
        for batch in batches:
            xb = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(xb.to(device) if device is not None and isinstance(xb, torch.Tensor) else xb)
            used += 1
            if max_batches is not None and used >= max_batches:
                break
        if used == 0:
            raise ValueError("recompute_bn_stats: batches held no batch (the statistics are left as they were)")
    except BaseException:
        for bn, (mean, var, count) in zip(bns, saved):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.num_batches_tracked.copy_(count)
        raise
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        for module, training in modes:
            module.training = training
    return used
