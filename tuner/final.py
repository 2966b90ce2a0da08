"""The final model: trained from an export, saved as one file, evaluated and loaded again later.

``tuner train EXPORT -o MODEL.pt`` trains the export's best configuration on train + val for
its full budget, reports its test metrics, and saves one file holding the weights (BN's
running mean and variance included), the resolved config, the metrics and the data's
fingerprint. ``tuner evaluate MODEL.pt`` rebuilds the network in eval mode and reproduces
those test metrics exactly on the same data (and device type).

A model file is data: :mod:`tuner.model_file` says what it holds and reads it back.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuner import datasets, usercode
from tuner import export_file as export_mod
from tuner.errors import InputError, first_line
from tuner.files import write_bytes
from tuner.model_file import MODEL_FORMAT, ModelFile, device_of, load_model, untrusted
from tuner.models.data import Dataset, extreme_value
from tuner.models.train import Trainer, evaluate, model_state
from tuner.outputs import check_not_input, check_output
from tuner.records import now
from tuner.retesting import sweep_with_data
from tuner.spec import Sweep, from_dict


def train(
    export_path: str | Path,
    output: str | Path,
    data: Mapping[str, Any] | None = None,
    device: str | None = None,
    write: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the export's best configuration on train + val and save it to ``output``.

    Args:
        export_path: an export file (``params``/``config`` of the best configuration).
        output: the model file to write (atomically).
        data: overrides of the config's ``data`` section.
        device: ``cpu`` or ``cuda`` (default: CUDA when torch sees a GPU).

    Returns:
        The metrics saved with the model: the test metrics (``test_acc``, ``test_loss``; for
        regression ``test_rmse``...), ``train_loss``, ``epochs``, ``seconds``, ``device``.

    Raises:
        InputError: a bad export file, output or data override, an output that is the export
            itself, an export whose function is the user's (it saves its own model), or a
            training that diverged (nothing written).
    """
    check_not_input(output, [export_path])  # the model must not replace the export it is trained from
    out = check_output(output)
    torch_device = device_of(device)
    export, _ = export_mod.load(export_path)
    sweep = sweep_with_data(export.config, f"{export_path}: config", data, Path(export_path).parent)
    if not sweep.builtin:
        raise InputError(
            f"{export_path}: config.function: {sweep.function} trains its own model; tuner train needs "
            "the built-in trainer's model and train sections (save your model from your function)"
        )
    if (sweep.data or {}).get("name") == "npz":  # the data file is read as well: never replaced by the model
        check_not_input(output, [sweep.data["path"]])
    dataset = datasets.load(sweep, trains_on_split=False)  # trains on train + val
    assert dataset is not None  # the built-in trainer always has data
    usercode.add_to_path(sweep.base_dir)
    cfg = sweep.base_config()
    write(
        f"training {cfg['model']['name']} on {dataset.name} train+val ({len(dataset.x_train) + len(dataset.x_val)} "
        f"samples) for {cfg['train']['epochs']} epochs on {torch_device.type}"
    )
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    with _user_model_errors(export_path, cfg["model"]):
        trainer = Trainer(cfg["model"], cfg["train"], dataset, device=torch_device, final=True)
        for epoch_metrics in trainer.epochs():
            metrics = epoch_metrics
            loss = epoch_metrics["train_loss"]
            if not math.isfinite(loss):
                raise InputError(diverged(str(export_path), loss, trainer.epoch, dataset, export.params))
    metrics = {
        **{k: v for k, v in metrics.items() if k.startswith("test_")},
        "train_loss": metrics["train_loss"],
        "epochs": trainer.epoch,
        "seconds": time.perf_counter() - start,
        "device": torch_device.type,
    }
    from tuner.provenance import versions

    payload = {
        "format": MODEL_FORMAT,
        "config": sweep.to_dict(),
        "params": dict(export.params),
        "input_shape": list(dataset.input_shape),
        "num_outputs": dataset.num_outputs,
        "state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "metrics": metrics,
        "data": dataset.fingerprint(),
        "versions": versions(),
        "export": str(Path(export_path).resolve()),
        "created": now(),
        **model_state(trainer),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        write_bytes(out, buffer.getvalue())
    except OSError as e:
        raise InputError(f"-o: {output}: cannot write ({e.strerror or e})") from None
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("test_"))
    write(f"test: {shown}; saved {out}")
    return metrics


def diverged(source: str, loss: float, epoch: int, data: Dataset, params: Mapping[str, Any]) -> str:
    """The problem line of a final training whose loss turned non-finite: the data's fault when
    it holds extreme values (naming the first such value), else the configuration's."""
    where = extreme_value(data)
    if where is not None:
        return (
            f"{source}: data: training diverged (loss {loss}) at epoch {epoch}: the data holds extreme values "
            f"({where}); standardise the inputs (or targets) and train again"
        )
    shown = ", ".join(f"{k} {v}" for k, v in list(params.items())[:6]) or "its base configuration"
    return (
        f"{source}: params: training diverged (loss {loss}) at epoch {epoch} on train+val with {shown}: the "
        "configuration is unstable (a smaller train.lr usually helps); the data's values are within range"
    )


class _user_model_errors:
    """Inside it, an exception from a user's model function (``model.name`` names code) is bad
    input naming the function, one line; the built-in networks' errors pass through (bugs)."""

    def __init__(self, source: str | Path, model_cfg: Mapping[str, Any]) -> None:
        self.source, self.name = str(source), str(model_cfg.get("name", ""))

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: Any) -> bool:
        if e is None or ":" not in self.name or isinstance(e, (InputError, KeyboardInterrupt, GeneratorExit)):
            return False
        raise InputError(
            f"{self.source}: config.model.name: {self.name[:100]!r} failed: {type(e).__name__}: {first_line(e, 160)}"
        ) from None


def _check_targets(path: str | Path, data: Dataset, info: ModelFile) -> None:
    """Refuse data whose test targets the model cannot be scored on: class labels in
    ``[0, num_outputs)``, or regression targets of ``num_outputs`` values each.

    Raises:
        InputError: one line naming the file, the label (or the targets' shape) and the rule.
    """
    assert data.y_test is not None
    y = data.y_test
    if info.task == "classification":
        bad = np.flatnonzero((y < 0) | (y >= info.num_outputs))
        if len(bad):
            raise InputError(
                f"{path}: data: y_test[{bad[0]}]: {y[bad[0]].item()!r} is not a class of the model's "
                f"{info.num_outputs} outputs (labels must be in [0, {info.num_outputs}))"
            )
        return
    width = int(np.prod(y.shape[1:], dtype=np.int64)) if y.ndim > 1 else 1
    if width != info.num_outputs:
        raise InputError(
            f"{path}: data: y_test: targets of shape {tuple(y.shape)} ({width} a sample) do not fit the "
            f"model's {info.num_outputs} outputs"
        )


def evaluate_file(
    path: str | Path, data: Mapping[str, Any] | None = None, device: str | None = None, trust_code: bool = False
) -> dict[str, Any]:
    """The test metrics of a saved model on its data's test split (or on the data the ``data``
    overrides describe), in eval mode: BN's running statistics, not the batch's."""
    torch_device = device_of(device)
    model, info = load_model(path, torch_device, trust_code)
    raw = dict(info.config)
    for key in ("function", "config", "seed"):
        raw.pop(key, None)
    untrusted(Path(path), "data.name", (data or {}).get("name", (raw.get("data") or {}).get("name")), trust_code)

    def as_sweep(cfg: dict[str, Any]) -> Sweep:
        return sweep_with_data(cfg, f"{path}: config", data) if data else from_dict(cfg, f"{path}: config")

    # The data's task first: on data of the other task the model's metric breaks the sweep's
    # rules too, and that line would blame the model file's metric, not the data given.
    try:
        probe: Sweep | None = as_sweep({k: v for k, v in raw.items() if k not in ("metric", "mode")})
    except InputError:
        probe = None  # the whole config's check below names the problem
    dataset = None if probe is None else datasets.load(probe, trains_on_split=False, check_metric=False)
    if dataset is not None and dataset.task != info.task:
        raise InputError(f"{path}: data: {info.task} model, but the data's targets are for {dataset.task}")
    try:
        sweep = as_sweep(raw)
    except InputError as e:
        raise InputError(e.problems[0]) from None
    if dataset is None:
        dataset = datasets.load(sweep, trains_on_split=False)  # no training
    else:
        datasets.fits(sweep, dataset)  # the model's metric, now that the data's task is known to fit
    assert dataset is not None and dataset.x_test is not None and dataset.y_test is not None
    if dataset.task != info.task:
        raise InputError(f"{path}: data: {info.task} model, but the data's targets are for {dataset.task}")
    if dataset.input_shape != info.input_shape:
        raise InputError(f"{path}: data: inputs {dataset.input_shape} do not fit the model's {info.input_shape}")
    _check_targets(path, dataset, info)
    target_mean = target_std = None
    if info.task == "regression" and info.target:
        target_mean = torch.tensor(info.target["target_mean"], dtype=torch.float32, device=torch_device)
        target_std = torch.tensor(info.target["target_std"], dtype=torch.float32, device=torch_device)
    y = torch.from_numpy(dataset.y_test).to(torch_device)
    metrics = evaluate(
        model,
        torch.from_numpy(dataset.x_test).to(torch_device),
        y,
        info.task,
        amp=bool(sweep.train.get("amp")) and torch_device.type == "cuda",
        target_mean=target_mean,
        target_std=target_std,
        prefix="test_",
    )
    same_data = dataset.fingerprint()["sha256"] == info.data.get("sha256")
    return {
        **metrics,
        "n": len(dataset.y_test),
        "same_data": same_data,
        "trained": info.metrics,
        "device": torch_device.type,
    }
