"""What a trial trains: batch-norm networks, data sets and the training loop.

Installed as ``tuner.models`` (the folder stays ``models/`` in the repository), so a user's
own ``models.py`` or ``models/`` beside their sweep file never clashes with it. This package
knows nothing of sweeps or Ray (it imports nothing else of ``tuner``): a notebook can build a
network, load a data set and train it with these alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .data import DataError, Dataset, load

if TYPE_CHECKING:
    from torch import nn

    from .cnn import CNN, CNNConfig
    from .mlp import MLP, MLPConfig

MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")  # cosine: decays to 0 over the epochs


def __getattr__(name: str) -> Any:
    # The networks import torch, on first use only: reading a sweep file or a data set (the
    # driver of a run, `tuner validate`, `tuner space`) never pays for it.
    if name in ("MLP", "MLPConfig"):
        from . import mlp

        return getattr(mlp, name)
    if name in ("CNN", "CNNConfig"):
        from . import cnn

        return getattr(cnn, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CNN", "CNNConfig", "MLP", "MLPConfig", "Dataset", "DataError", "load", "build_model", "MODELS"]


def build_model(
    cfg: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    resolve: Callable[[str], Callable[..., Any]] | None = None,
) -> nn.Module:
    """Build the network a sweep's ``model`` section describes.

    Args:
        cfg: ``name`` (``mlp``, ``cnn`` or ``"package.module:function"``), ``hidden``
            (MLP widths or CNN channels per block), ``batch_norm``, ``bn_momentum`` in (0, 1],
            ``kernel_size`` (CNN) and ``kwargs`` (passed to a user's function).
        input_shape: one sample's shape, e.g. ``(1, 40)``.
        num_outputs: classes (logits) or regression targets.
        resolve: turns ``"package.module:function"`` into the function (default: import it).

    A user's function is called as ``fn(input_shape, num_outputs, **kwargs)`` and must
    return an ``nn.Module`` mapping ``(B, *input_shape)`` to ``(B, num_outputs)``.
    """
    from torch import nn

    from .cnn import CNN, CNNConfig
    from .mlp import MLP, MLPConfig

    name = cfg["name"]
    hidden = tuple(int(h) for h in cfg.get("hidden", (100, 100)))
    batch_norm = bool(cfg.get("batch_norm", True))
    bn_momentum = float(cfg.get("bn_momentum", 0.1))
    if name == "mlp":
        dim = 1
        for s in input_shape:
            dim *= int(s)
        return MLP(MLPConfig(dim, num_outputs, hidden, batch_norm, bn_momentum))
    if name == "cnn":
        return CNN(CNNConfig(tuple(input_shape), num_outputs, hidden, cfg.get("kernel_size"), batch_norm, bn_momentum))
    if ":" in name:
        if resolve is None:
            module_name, _, attr = name.partition(":")
            fn = getattr(importlib.import_module(module_name), attr)
        else:
            fn = resolve(name)
        module = fn(tuple(input_shape), num_outputs, **(cfg.get("kwargs") or {}))
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} returned {type(module).__name__}, not a torch.nn.Module")
        return module
    raise ValueError(f"unknown model {name!r}: one of {', '.join(MODELS)} or 'package.module:function'")
