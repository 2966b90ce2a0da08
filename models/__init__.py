"""What a trial trains: batch-norm networks, data sets and the training loop.

Installed as ``tuner.models`` (the folder stays ``models/`` in the repository), so a user's
own ``models.py`` or ``models/`` beside their sweep file never clashes with it. This package
knows nothing of sweeps or Ray (it imports nothing else of ``tuner``): a notebook can build a
network, load a data set and train it with these alone.
"""

from __future__ import annotations

import importlib
import inspect
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


__all__ = [
    "CNN",
    "CNNConfig",
    "MLP",
    "MLPConfig",
    "Dataset",
    "DataError",
    "ModelError",
    "load",
    "build_model",
    "check_model",
    "is_user_model",
    "MODELS",
]

PROBE_BATCH = 2  # samples in the batch a user's network is tried on before training


class ModelError(TypeError, ValueError):
    """A user's model function broke its contract: it returned no ``nn.Module``, or a network
    that fails on (or does not map) a batch of the data's shape to ``(B, num_outputs)``. The
    message is one line; the network's own error, if any, is the ``__cause__``."""


def is_user_model(cfg: Mapping[str, Any]) -> bool:
    """Whether a ``model`` section names a user's function (``"package.module:function"``)."""
    name = cfg.get("name")
    return isinstance(name, str) and ":" in name


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
    return an ``nn.Module`` mapping ``(B, *input_shape)`` to ``(B, num_outputs)`` (see
    :func:`check_model`).

    Raises:
        ModelError: a user's function cannot be called so (its signature), or returned no
            ``nn.Module``.
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
        kwargs = cfg.get("kwargs") or {}
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # no signature to tell (a builtin): its call will
            signature = None
        try:
            if signature is not None:
                signature.bind(tuple(input_shape), num_outputs, **kwargs)
        except TypeError as e:  # said as the user's mistake, not raised from inside their function
            shown = f"(input_shape, num_outputs{', **model.kwargs' if kwargs else ''})"
            raise ModelError(f"{name} cannot be called as {name.partition(':')[2]}{shown}: {e}") from None
        module = fn(tuple(input_shape), num_outputs, **kwargs)
        if not isinstance(module, nn.Module):
            raise ModelError(f"{name} returned {type(module).__name__}, not a torch.nn.Module")
        return module
    raise ValueError(f"unknown model {name!r}: one of {', '.join(MODELS)} or 'package.module:function'")


def check_model(model: nn.Module, input_shape: tuple[int, ...], num_outputs: int, name: str = "the model") -> None:
    """Try ``model`` (a user's network) on a zero batch of ``PROBE_BATCH`` samples of
    ``input_shape`` in eval mode, without gradients: it must return a floating tensor of shape
    ``(B, num_outputs)`` (or ``(B,)`` for one output), and it must have a parameter to train
    (``requires_grad``). Nothing of the model changes (eval mode updates no BN statistics; its
    training mode is restored).

    Raises:
        ModelError: the network has nothing to train, fails on the batch (its error the
            ``__cause__``) or returns something else; one line naming ``name``, the batch's
            shape and the rule.
    """
    import torch

    shape = (PROBE_BATCH, *(int(s) for s in input_shape))
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape, dtype=torch.float32, device=device))
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except Exception as e:  # the user's network fails in its own way
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ModelError(
            f"{name}: the network it returned fails on a batch of shape {shape}: {type(e).__name__}: {first}"
        ) from e
    finally:
        model.train(was_training)
    wanted = [(PROBE_BATCH, num_outputs)] + ([(PROBE_BATCH,)] if num_outputs == 1 else [])
    if not isinstance(out, torch.Tensor) or tuple(out.shape) not in wanted or not out.is_floating_point():
        got = (
            f"a {out.dtype} tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        )
        raise ModelError(
            f"{name}: the network it returned maps a batch of shape {shape} to {got}; it must return a "
            f"floating tensor of shape {(PROBE_BATCH, num_outputs)} (num_outputs {num_outputs})"
        )
    if not any(p.requires_grad for p in model.parameters()):
        n = sum(1 for _ in model.parameters())
        what = f"all {n} of its parameters have requires_grad False" if n else "it has no parameters"
        raise ModelError(f"{name}: the network it returned has nothing to train ({what})")
