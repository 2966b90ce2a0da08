"""The final model: trained from an export, saved as one file, evaluated again later.

``tuner train EXPORT -o MODEL.pt`` trains the export's best configuration on train + val for
its full budget, reports the test accuracy, and saves one file holding the weights (BN's
running mean and variance included), the resolved config, the metrics and the data's
fingerprint. ``tuner evaluate MODEL.pt`` rebuilds the network in eval mode and reproduces
that test accuracy exactly on the same data (and device type).

The file is a plain ``torch.save`` of tensors, strings and numbers, loaded with
``weights_only=True``: no pickled code runs when it is read.
"""

from __future__ import annotations

import datetime as dt
import io
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from models import build_model
from models.train import Trainer, default_device, evaluate
import tuner.export_file as export_mod
from tuner.errors import InputError
from tuner.files import write_bytes
from tuner.retesting import load_sweep_data, sweep_with_data

MODEL_FORMAT = "tuner-model/1"


def train(export_path: str | Path, output: str | Path, data: Mapping[str, Any] | None = None,
          device: str | None = None, write: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the export's best configuration on train + val and save it to ``output``.

    Args:
        export_path: an export file (``params``/``config`` of the best configuration).
        output: the model file to write (atomically).
        data: overrides of the config's ``data`` section.
        device: ``cpu`` or ``cuda`` (default: CUDA when torch sees a GPU).

    Returns:
        The metrics saved with the model: ``test_acc``, ``test_loss``, ``train_loss``,
        ``epochs``, ``seconds``, ``device``.

    Raises:
        InputError: a bad export file or data override (nothing written).
    """
    export = export_mod.load(export_path)
    sweep = sweep_with_data(export["config"], str(export_path), data)
    dataset = load_sweep_data(sweep)
    out = Path(output)
    if out.is_dir():
        raise InputError(f"-o: {output} is a folder; give a file name such as model.pt")
    torch_device = torch.device(device) if device else default_device()
    cfg = sweep.base_config()
    write(f"training {cfg['model']['name']} on {dataset.name} train+val ({len(dataset.x_train) + len(dataset.x_val)} "
          f"samples) for {cfg['train']['epochs']} epochs on {torch_device.type}")
    start = time.perf_counter()
    trainer = Trainer(cfg["model"], cfg["train"], dataset, device=torch_device, final=True)
    train_loss = float("nan")
    for _ in range(int(cfg["train"]["epochs"])):
        train_loss = trainer.train_epoch()
        if train_loss != train_loss or abs(train_loss) == float("inf"):
            raise InputError(f"{export_path}: training diverged (loss {train_loss}) at epoch {trainer.epoch}; "
                             "the exported configuration is unstable on train+val")
    assert dataset.x_test is not None and dataset.y_test is not None
    test_loss, test_acc = trainer.evaluate(dataset.x_test, dataset.y_test)
    metrics = {"test_acc": test_acc, "test_loss": test_loss, "train_loss": train_loss,
               "epochs": trainer.epoch, "seconds": time.perf_counter() - start, "device": torch_device.type}
    from tuner.runner import versions

    payload = {"format": MODEL_FORMAT, "config": sweep.to_dict(), "params": dict(export["params"]),
               "input_shape": list(dataset.input_shape), "num_classes": dataset.num_classes,
               "state_dict": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
               "metrics": metrics, "data": dataset.fingerprint(), "versions": versions(),
               "export": str(Path(export_path).resolve()), "created": _now()}
    _save_atomic(payload, out)
    write(f"test accuracy {test_acc:.4f} (loss {test_loss:.4f}); saved {out}")
    return metrics


def _save_atomic(payload: dict[str, Any], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The saved network (in eval mode, on ``device``) and the file's contents.

    Raises:
        InputError: missing, unreadable or not a tuner model file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: any unpickling error
        raise InputError(f"{path}: not a tuner model file ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(f"{path}: not a tuner model file (no format {MODEL_FORMAT!r})")
    cfg = payload["config"]
    model = build_model(cfg["model"], tuple(payload["input_shape"]), int(payload["num_classes"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload


def evaluate_file(path: str | Path, data: Mapping[str, Any] | None = None, device: str | None = None) -> dict[str, Any]:
    """Test loss and accuracy of a saved model on its data's test split (or on the data the
    ``data`` overrides describe), in eval mode: BN's running statistics, not the batch's."""
    torch_device = torch.device(device) if device else default_device()
    model, payload = load(path, torch_device)
    sweep = sweep_with_data(payload["config"], str(path), data)
    dataset = load_sweep_data(sweep)
    assert dataset.x_test is not None and dataset.y_test is not None
    x = torch.from_numpy(dataset.x_test).to(torch_device)
    y = torch.from_numpy(dataset.y_test).to(torch_device)
    test_loss, test_acc = evaluate(model, x, y, amp=bool(sweep.train.get("amp")) and torch_device.type == "cuda")
    same_data = dataset.fingerprint()["sha256"] == payload["data"]["sha256"]
    return {"test_acc": test_acc, "test_loss": test_loss, "n": len(dataset.y_test), "same_data": same_data,
            "trained": payload["metrics"], "device": torch_device.type}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
