"""A model file (``tuner train``'s output): what it holds, and reading it back as untrusted data.

A model file is data. It is a plain ``torch.save`` of tensors, strings and numbers, loaded
with ``weights_only=True`` (no pickled code runs), its size, its network's shapes and its
values checked before anything is allocated or loaded; loading it never imports a callable
named inside it -- a ``"package.module:function"`` model or data source -- unless the user
says so (``trust_code=True``, ``--trust-code``); the error names the callable otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tuner import files, usercode
from tuner.errors import InputError, first_line, show
from tuner.models import build_model
from tuner.models.train import default_device

MODEL_FORMAT = "tuner-model/2"
MAX_MODEL_BYTES = 2 * 1024**3


@dataclass
class ModelFile:
    """What a model file holds besides its weights."""

    config: dict[str, Any]  # the resolved sweep it was trained from (a sweep file's form)
    params: dict[str, Any]
    input_shape: tuple[int, ...]
    num_outputs: int
    task: str
    metrics: dict[str, Any]  # what training measured on the test split
    data: dict[str, Any]  # the training data's fingerprint
    created: str
    versions: dict[str, str]
    target: dict[str, Any]  # regression: the targets' standardisation

    def __repr__(self) -> str:
        model = self.config.get("model", {}).get("name", "?")
        shown = ", ".join(
            f"{k} {v:.4g}" for k, v in self.metrics.items() if k.startswith("test_") and isinstance(v, float)
        )
        return f"ModelFile({model}, {self.task}, input {self.input_shape}, {shown}, created {self.created})"


def device_of(name: str | torch.device | None) -> torch.device:
    """``cpu``, ``cuda``, a ``torch.device`` of either type, or None (CUDA when torch sees a GPU).

    Raises:
        InputError: another device, or CUDA asked for on a machine without CUDA.
    """
    if name is None:
        return default_device()
    if not isinstance(name, (str, torch.device)):
        raise InputError(f"--device: {show(name, 40)} is not one of cpu, cuda")
    kind = name.type if isinstance(name, torch.device) else name
    if kind not in ("cpu", "cuda"):
        raise InputError(f"--device: {str(name)[:40]!r} is not one of cpu, cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: this machine has no CUDA device torch can use (use --device cpu)")
    return name if isinstance(name, torch.device) else torch.device(name)


def _read(path: Path) -> dict[str, Any]:
    size = files.regular_size(path, "tuner model file")
    if size > MAX_MODEL_BYTES:
        raise InputError(f"{path}: larger than {MAX_MODEL_BYTES // 1024**3} GB: not a tuner model file")
    try:
        with warnings.catch_warnings():  # a foreign pickle makes torch warn before it refuses: one line only
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: any unpickling error
        raise InputError(f"{path}: not a tuner model file ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: not a tuner model file (no format {MODEL_FORMAT!r})")
    return payload


def _info(path: Path, payload: dict[str, Any]) -> ModelFile:
    try:
        config = payload["config"]
        info = ModelFile(
            config=config,
            params=dict(payload.get("params") or {}),
            input_shape=_shape(payload["input_shape"]),
            num_outputs=_count(payload["num_outputs"], "num_outputs"),
            task=str(payload.get("task", "classification")),
            metrics=dict(payload.get("metrics") or {}),
            data=dict(payload.get("data") or {}),
            created=str(payload.get("created", "")),
            versions=dict(payload.get("versions") or {}),
            target={k: _target(payload[k], k) for k in ("target_mean", "target_std") if k in payload},
        )
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise TypeError("config.model")
        if (
            not 0 < len(info.input_shape) <= 3
            or not all(0 < s <= 10**7 for s in info.input_shape)
            or not 0 < info.num_outputs <= 100_000
            or info.task not in ("classification", "regression")
        ):
            raise ValueError("shapes")
        _finite_metrics(path, info.metrics)
        if info.target and (
            len(info.target) != 2
            or any(isinstance(v, list) and len(v) != info.num_outputs for v in info.target.values())
        ):
            raise ValueError("target_mean/target_std")
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise InputError(f"{path}: not a tuner model file (malformed: {str(e)[:100]})") from None
    return info


def _count(value: Any, key: str) -> int:
    """A count the file holds: an int, never a bool or a float (``int()`` would truncate 10.7
    and read True as 1)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key}: {show(value, 40)} is not an integer")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    """The input shape the file holds: a list of ints (a string would be read one character a
    dimension)."""
    if not isinstance(value, (list, tuple)) or len(value) > 3:
        raise TypeError(f"input_shape: {show(value, 40)} is not a list of at most 3 integers")
    return tuple(_count(s, f"input_shape[{i}]") for i, s in enumerate(value))


def _finite_metrics(path: Path, metrics: Mapping[str, Any]) -> None:
    """Refuse stored metrics that are not finite numbers (a string, such as ``device``, is kept).

    Raises:
        InputError: one line naming the file, the metric and the rule.
    """
    for key, value in metrics.items():
        if isinstance(value, str):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{path}: metrics.{str(key)[:60]}: {show(value)} must be a finite number")


def _target(value: Any, key: str) -> float | list[float]:
    """A regression target's mean or std as the file holds it: a finite number (one target) or
    a list of them (one a target)."""
    values = value if isinstance(value, list) else [value]
    if not 0 < len(values) <= 100_000 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(key)
    return [float(v) for v in values] if isinstance(value, list) else float(value)


def untrusted(path: Path, key: str, ref: Any, trust_code: bool) -> None:
    if isinstance(ref, str) and ":" in ref and not trust_code:
        raise InputError(
            f"{path}: config.{key}: {ref[:100]!r} names code; a model file is data and tuner imports no "
            "code it names unless you trust the file: --trust-code (tuner.load_model(..., "
            "trust_code=True))"
        )


def load_model(
    path: str | Path, device: str | torch.device | None = "cpu", trust_code: bool = False
) -> tuple[torch.nn.Module, ModelFile]:
    """The saved network in eval mode (BN's running statistics) on ``device``, and what the
    file says of it.

    Args:
        path: a file written by :func:`train`.
        device: ``cpu``, ``cuda`` or None (CUDA when available).
        trust_code: import the ``"package.module:function"`` model the file names (a model file
            is data: without this, such a file is refused).

    Raises:
        InputError: missing, unreadable or not a tuner model file, weights that do not fit the
            network it describes, or code named without ``trust_code``.
    """
    p = Path(path)
    payload = _read(p)
    info = _info(p, payload)
    torch_device = device_of(device)  # before any work: a device this machine lacks is said first
    model_cfg = info.config["model"]
    untrusted(p, "model.name", model_cfg.get("name"), trust_code)
    model_cfg = _model_section(p, model_cfg)  # the sweep's rules, before anything is built
    try:
        state = payload["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise TypeError("state_dict must map names to tensors")
        _same_count(model_cfg, state)
        # The network the file describes, built first without memory (torch's meta device): its
        # shapes must be the weights' before anything is allocated -- a hostile file may describe
        # a network of terabytes.
        with torch.device("meta"):
            skeleton = build_model(model_cfg, info.input_shape, info.num_outputs, resolve=usercode.resolve)
        _same_shapes(skeleton.state_dict(), state)
        _check_values(p, skeleton, state)
        model = build_model(model_cfg, info.input_shape, info.num_outputs, resolve=usercode.resolve)
        model.load_state_dict(state)
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, ImportError, MemoryError) as e:
        raise InputError(
            f"{p}: the weights do not fit the network the file describes ({type(e).__name__}: {first_line(e, 160)})"
        ) from None
    except BaseException as e:  # a trusted model function that failed in its own way
        raise InputError(
            f"{p}: config.model.name: building the network failed: {type(e).__name__}: {first_line(e, 160)}"
        ) from None
    return model.to(torch_device).eval(), info


def _model_section(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """The file's ``config.model`` checked by the rules a sweep's ``model`` section obeys
    (:mod:`tuner.spec.schema`: the name, at most 100 widths, the weights between them...),
    without importing anything: a hostile file describing a network of 100 000 layers is
    refused here, in milliseconds, not after its skeleton was built.

    Raises:
        InputError: the first problem, one line naming the file and the key.
    """
    from tuner.spec.validate import Validator

    check = Validator(f"{path}: config", None, offline=True)
    section = check.model(raw)
    if check.problems:
        raise InputError(check.problems[0])
    return section


def _same_count(model_cfg: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """Raise ValueError when a built-in network's tensors (its ``state_dict``'s entries) cannot
    be as many as the file holds, before the network is built. A block of ``hidden`` holds its
    weight and, with BN, BN's weight, bias, running mean, running variance and batch count
    (else the layer's bias); the head its weight and bias. A user's network is not counted."""
    if model_cfg["name"] not in ("mlp", "cnn"):
        return
    expected = len(model_cfg["hidden"]) * (6 if model_cfg["batch_norm"] else 2) + 2
    if expected != len(state):
        raise ValueError(f"config.model implies {expected} tensors, the file holds {len(state)}")


def _same_shapes(expected: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor]) -> None:
    """Raise ValueError naming the first weight the file lacks, has extra, or holds in another shape."""
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise ValueError(f"{what} ({len(missing)} missing, {len(extra)} unexpected)")
    for k, v in expected.items():
        if tuple(v.shape) != tuple(saved[k].shape):
            raise ValueError(f"{k}: the network needs {tuple(v.shape)}, the file holds {tuple(saved[k].shape)}")


def _check_values(path: Path, skeleton: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Refuse weights whose dtypes or values the network cannot hold: a floating tensor (a
    weight, BN's statistics) of a real floating dtype and finite, an integer one (BN's batch
    count) of an integer dtype, and BN's ``running_var`` >= 0.

    Raises:
        InputError: one line naming the file, the tensor and the rule.
    """
    expected = skeleton.state_dict()
    for key, saved in state.items():
        where = f"{path}: state_dict.{key}"
        if expected[key].is_floating_point() and not saved.is_floating_point():
            raise InputError(f"{where}: dtype {saved.dtype} must be a real floating dtype (float32, float64...)")
        if not expected[key].is_floating_point() and (
            saved.is_floating_point() or saved.is_complex() or saved.dtype == torch.bool
        ):
            raise InputError(f"{where}: dtype {saved.dtype} must be an integer dtype (int64)")
        if saved.is_floating_point() and not bool(torch.isfinite(saved).all()):
            raise InputError(f"{where}: holds NaN or infinite values; weights must be finite")
    for name, layer in skeleton.named_modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm) and layer.track_running_stats:
            key = f"{name}.running_var" if name else "running_var"
            var = state.get(key)
            if var is not None and bool((var < 0).any()):
                raise InputError(
                    f"{path}: state_dict.{key}: {float(var.min())} is negative; a BatchNorm running_var must be >= 0"
                )
