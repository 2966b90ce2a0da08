"""What a trial trains: batch-norm networks, data sets and the training loop.

This package knows nothing of sweeps or Ray (``models`` never imports ``tuner``): a
notebook can build a network, load a data set and train it with these alone.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from models.cnn import CNN, CNNConfig
from models.data import Dataset, DataError, load
from models.mlp import MLP, MLPConfig

MODELS = ("mlp", "cnn")

__all__ = ["CNN", "CNNConfig", "MLP", "MLPConfig", "Dataset", "DataError", "load", "build_model", "MODELS"]


def build_model(cfg: Mapping[str, Any], input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the network a sweep's ``model`` section describes.

    Args:
        cfg: ``name`` (``mlp``, ``cnn`` or ``"package.module:function"``), ``hidden``
            (MLP widths or CNN channels per block), ``batch_norm``, ``bn_momentum`` in (0, 1),
            ``kernel_size`` (CNN) and ``kwargs`` (passed to a user's function).
        input_shape: one sample's shape, e.g. ``(1, 40)``.
        num_classes: number of output logits.

    A user's function is called as ``fn(input_shape, num_classes, **kwargs)`` and must
    return an ``nn.Module`` mapping ``(B, *input_shape)`` to ``(B, num_classes)`` logits.
    """
    name = cfg["name"]
    hidden = tuple(int(h) for h in cfg.get("hidden", (100, 100)))
    batch_norm = bool(cfg.get("batch_norm", True))
    bn_momentum = float(cfg.get("bn_momentum", 0.1))
    if name == "mlp":
        dim = 1
        for s in input_shape:
            dim *= int(s)
        return MLP(MLPConfig(dim, num_classes, hidden, batch_norm, bn_momentum))
    if name == "cnn":
        return CNN(CNNConfig(tuple(input_shape), num_classes, hidden, cfg.get("kernel_size"), batch_norm, bn_momentum))
    if ":" in name:
        from models.data import resolve_callable

        module = resolve_callable(name)(tuple(input_shape), num_classes, **(cfg.get("kwargs") or {}))
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} returned {type(module).__name__}, not a torch.nn.Module")
        return module
    raise ValueError(f"unknown model {name!r}: one of {', '.join(MODELS)} or 'package.module:function'")
