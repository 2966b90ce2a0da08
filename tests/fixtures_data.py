"""Importable helpers for tests: a user's data function and model function."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn


def counting_data(log: str, n: int = 200) -> dict[str, np.ndarray]:
    """A data source that records every call in ``log`` (one line each)."""
    with open(log, "a") as f:
        f.write("called\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return {
        "x_train": x[: n * 4 // 5],
        "y_train": y[: n * 4 // 5],
        "x_test": x[n * 4 // 5 :],
        "y_test": y[n * 4 // 5 :],
    }


def tiny_net(input_shape: tuple[int, ...], num_classes: int, width: int = 8) -> nn.Module:
    """A user's model: flatten, one hidden layer."""
    dim = int(np.prod(input_shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, num_classes))


def not_a_module(input_shape: Any, num_classes: int) -> str:
    return "nope"


def write_npz(path: Path, n: int = 120, features: int = 5) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, 3, size=n)
    np.savez(path, x_train=x[:100], y_train=y[:100], x_test=x[100:], y_test=y[100:])
    return path


class _Slow(nn.Module):
    """Sleeps ``step_s`` before each training-mode forward pass: a trial slow enough to be
    caught mid-training, whatever the machine's speed."""

    def __init__(self, net: nn.Module, step_s: float) -> None:
        super().__init__()
        self.net = net
        self.step_s = step_s

    def forward(self, x: Any) -> Any:
        if self.training and self.step_s > 0:
            import time

            time.sleep(self.step_s)
        return self.net(x)


def slow_net(input_shape: tuple[int, ...], num_classes: int, width: int = 8, step_s: float = 0.1) -> nn.Module:
    """:func:`tiny_net` that sleeps ``step_s`` seconds per training batch."""
    return _Slow(tiny_net(input_shape, num_classes, width), step_s)


def npz_once(path: str) -> dict[str, np.ndarray]:
    """A data source that can be read once: it loads ``path`` and deletes it, so nothing after
    the driver's load (a trial on any node) could read it again."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    Path(path).unlink()
    return arrays


class _Barrier(nn.Module):
    """Waits, before its first training batch, until ``n`` trials have reached theirs (files
    in the folder ``barrier``): trials that must overlap in time, however slow starting
    each one's process is."""

    def __init__(self, net: nn.Module, barrier: str, n: int, timeout_s: float) -> None:
        super().__init__()
        self.net = net
        self.barrier, self.n, self.timeout_s = barrier, n, timeout_s
        self.passed = False

    def forward(self, x: Any) -> Any:
        if self.training and not self.passed:
            import os
            import time
            import uuid

            folder = Path(self.barrier)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
            deadline = time.monotonic() + self.timeout_s
            while len(list(folder.iterdir())) < self.n and time.monotonic() < deadline:
                time.sleep(0.1)
            self.passed = True
        return self.net(x)


def barrier_net(
    input_shape: tuple[int, ...],
    num_classes: int,
    barrier: str,
    n: int,
    width: int = 8,
    step_s: float = 0.0,
    timeout_s: float = 180.0,
) -> nn.Module:
    """:func:`slow_net` whose trials wait for each other: ``n`` of them train at once."""
    return _Barrier(slow_net(input_shape, num_classes, width, step_s), barrier, n, timeout_s)


class _Flaky(nn.Module):
    def __init__(self, net: nn.Module, marker: str, fail_at_batch: int, pause_at_batch: int, pause_s: float) -> None:
        super().__init__()
        self.net, self.marker, self.fail_at_batch, self.batches = net, marker, fail_at_batch, 0
        self.pause_at_batch, self.pause_s = pause_at_batch, pause_s

    def forward(self, x: Any) -> Any:
        if self.training:
            self.batches += 1
            if self.batches == self.pause_at_batch and not Path(self.marker).exists():
                time.sleep(self.pause_s)
            if self.batches == self.fail_at_batch and not Path(self.marker).exists():
                Path(self.marker).write_text("failed once\n")
                raise RuntimeError("flaky_net: the planned failure")
        return self.net(x)


def flaky_net(
    input_shape: tuple[int, ...],
    num_classes: int,
    marker: str,
    fail_at_batch: int,
    pause_at_batch: int = 0,
    pause_s: float = 0.0,
) -> nn.Module:
    """A user's model that raises once, at its ``fail_at_batch``-th training batch, unless
    ``marker`` exists (it creates it): a trial failure to restore from. Before that failure it
    sleeps ``pause_s`` at its ``pause_at_batch``-th batch (the driver's snapshots go on)."""
    return _Flaky(tiny_net(input_shape, num_classes), marker, fail_at_batch, pause_at_batch, pause_s)


# -- a user's own trial function -------------------------------------------------------------


def _macro_f1(pred: Any, target: Any, classes: int) -> float:
    """The unweighted mean of each class's F1 score: a metric the built-in trainer does not report."""
    scores = []
    for c in range(classes):
        tp = int(((pred == c) & (target == c)).sum())
        fp = int(((pred == c) & (target != c)).sum())
        fn = int(((pred != c) & (target == c)).sum())
        scores.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(sum(scores) / max(classes, 1))


def user_fit(config: dict[str, Any], run: Any) -> None:
    """A user's trial function ``fit(config, run)`` on a classification ``run.data``: a small
    BN network trained with a label-smoothed cross-entropy (not the built-in trainer's loss),
    reporting ``train_loss``, ``val_loss``, ``val_acc`` and ``val_f1`` (macro F1, a metric of
    its own) once an epoch, and ``test_f1``/``test_acc`` on its last epoch when ``run.data``
    holds the test split (a retest). The whole training state goes with each report (a
    callable: saved only when a checkpoint is due) and ``run.restore()`` continues from it.

    ``config``: ``epochs``, ``lr``, ``width``, ``smoothing``, and for tests: ``log`` (a file:
    one JSON line a call, with ``run.seed``, the epoch restored from, this module's file, the
    pid and ``run.trial_id``), ``step_s`` (seconds slept an epoch), ``diverge_above`` (an
    ``lr`` above it reports an infinite loss at epoch 2, as a diverging trial would),
    ``fail`` (``{"at": EPOCH, "marker": PATH, "how": "raise" | "kill"}``: once, unless the
    marker exists, raise or SIGKILL this process at that epoch), ``omit`` (a metric left out
    of every report), ``raise_at`` (an epoch at which to raise ``ValueError``), ``hang_at`` (an
    epoch at which to sleep for an hour, as a deadlocked function would), ``barrier``
    (``{"dir": PATH, "n": N}``: wait before training until N trials have started).
    """
    import json
    import math
    import os
    import time

    import torch

    data = run.data
    torch.manual_seed(run.seed)
    dev = run.device  # the GPU Ray gave the trial, else the CPU

    def tensor(a: Any) -> Any:
        return torch.from_numpy(a).to(dev)

    x, y = tensor(data.x_train).flatten(1), tensor(data.y_train)
    xv, yv = tensor(data.x_val).flatten(1), tensor(data.y_val)
    classes = int(data.num_outputs)
    width = int(config.get("width", 16))
    net = nn.Sequential(
        nn.Linear(x.shape[1], width, bias=False), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, classes)
    ).to(dev)
    optim = torch.optim.SGD(net.parameters(), lr=float(config["lr"]), momentum=0.9)
    order = torch.Generator().manual_seed(run.seed)  # on the CPU: its state must come back there
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config.get("smoothing", 0.1)))
    start = 0
    state = run.restore()
    if state is not None:
        net.load_state_dict(state["net"])
        optim.load_state_dict(state["optim"])
        order.set_state(state["order"])
        start = int(state["epoch"])
    if config.get("log"):
        with open(config["log"], "a") as f:
            line = {"seed": run.seed, "restored": start, "file": __file__, "pid": os.getpid(), "trial": run.trial_id}
            f.write(json.dumps(line) + "\n")
    barrier = config.get("barrier")
    if barrier:
        folder = Path(barrier["dir"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{os.getpid()}-{run.trial_id}").touch()
        deadline = time.monotonic() + 180
        while len(list(folder.iterdir())) < int(barrier["n"]) and time.monotonic() < deadline:
            time.sleep(0.1)
    fail = config.get("fail") or {}
    epoch = start

    def snapshot() -> dict[str, Any]:
        return {"net": net.state_dict(), "optim": optim.state_dict(), "order": order.get_state(), "epoch": epoch}

    for epoch in range(start + 1, int(config["epochs"]) + 1):
        if fail and epoch == int(fail["at"]) and not Path(fail["marker"]).exists():
            Path(fail["marker"]).write_text("failed once\n")
            if fail.get("how") == "kill":
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError("user_fit: the planned failure")
        if config.get("raise_at") == epoch:
            raise ValueError(f"user_fit: bad batch at epoch {epoch}")
        if config.get("hang_at") == epoch:  # a deadlock: tuner's trial_timeout must end it
            time.sleep(3600)
        net.train()
        total = 0.0
        for idx in torch.randperm(len(x), generator=order).split(32):
            if len(idx) < 2:
                continue
            loss = loss_fn(net(x[idx]), y[idx])
            optim.zero_grad()
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(idx)
        time.sleep(float(config.get("step_s", 0.0)))
        net.eval()
        with torch.no_grad():
            logits = net(xv)
        metrics = {
            "train_loss": total / len(x),
            "val_loss": float(nn.functional.cross_entropy(logits, yv)),
            "val_acc": float((logits.argmax(1) == yv).float().mean()),
            "val_f1": _macro_f1(logits.argmax(1), yv, classes),
        }
        if config.get("diverge_above") is not None and float(config["lr"]) > float(config["diverge_above"]):
            if epoch >= 2:
                metrics["train_loss"] = math.inf
        if epoch == int(config["epochs"]) and data.x_test is not None:
            with torch.no_grad():
                pred = net(tensor(data.x_test).flatten(1)).argmax(1)
            yt = tensor(data.y_test)
            metrics.update(test_acc=float((pred == yt).float().mean()), test_f1=_macro_f1(pred, yt, classes))
        metrics.pop(config.get("omit", ""), None)
        run.report(metrics, state=snapshot)


def user_fit_with_pandas(config: dict[str, Any], run: Any) -> None:
    """A user's function that uses pandas in a trial process: it writes one JSON line to
    ``config["log"]`` saying whether each of :data:`tuner.ray.deferred.DEFERRED` was loaded as
    it started (a process of tuner's own instance defers them), then reports the mean of
    its labels as computed by a pandas data frame and by numpy."""
    import json

    import pandas as pd

    from tuner.ray import deferred

    before = {name: deferred.loaded(name) for name in deferred.DEFERRED}
    frame = pd.DataFrame({"y": run.data.y_train})
    from pandas.api.types import is_numeric_dtype  # a submodule: pandas' body runs first

    with open(config["log"], "a") as f:
        f.write(json.dumps({"loaded": before, "numeric": bool(is_numeric_dtype(frame["y"]))}) + "\n")
    run.report({"val_acc": float(frame["y"].mean()), "numpy_mean": float(np.mean(run.data.y_train))})


def user_fit_returns_early(config: dict[str, Any], run: Any) -> None:
    """A user's function that reports nothing."""
    return None


# -- a user's project: its own train.py and its own models beside the sweep file -------------

_PROJECT_TRAIN = '''"""A user's training code: it imports ITS OWN models (this folder's), and tuner's networks
by their unambiguous name, tuner.models. Config: epochs, lr, width; for tests: log (a file: a
JSON line a call, saying where models, train and tuner.models came from, on which node, and the
epoch restored from), step_s (seconds slept an epoch), barrier ({dir, n}: wait until n trials
have started)."""

import json
import os
import sys
import time
from pathlib import Path

import models  # the project's own models.py or models/ package
import torch

import tuner.models


def _in_ray():
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()
from tuner.models import MLP


def fit(config, run):
    data = run.data
    x, y = torch.from_numpy(data.x_train).flatten(1), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(data.x_val).flatten(1), torch.from_numpy(data.y_val)
    torch.manual_seed(run.seed)
    net = models.build(x.shape[1], int(data.num_outputs), int(config["width"]))
    optim = torch.optim.SGD(net.parameters(), lr=config["lr"], momentum=0.9)
    start = 0
    state = run.restore()
    if state is not None:
        net.load_state_dict(state["net"])
        optim.load_state_dict(state["optim"])
        start = state["epoch"]
    if config.get("log"):
        with open(config["log"], "a") as f:
            where = {
                "models": os.path.realpath(models.__file__),
                "train": os.path.realpath(__file__),
                "tuner.models": os.path.realpath(tuner.models.__file__),
                # in a trial only: Ray imported but not started (tuner try) would start Ray, or join
                # whatever cluster /tmp/ray/ray_current_cluster names, dead or not
                "node": sys.modules["ray"].get_runtime_context().get_node_id() if _in_ray() else "",
                "restored": start,
                "pid": os.getpid(),
                "trial": run.trial_id,
            }
            f.write(json.dumps(where) + "\\n")
    barrier = config.get("barrier")
    if barrier:
        Path(barrier["dir"]).mkdir(parents=True, exist_ok=True)
        Path(barrier["dir"], f"{os.getpid()}-{run.trial_id}").touch()
        deadline = time.monotonic() + 180
        while len(os.listdir(barrier["dir"])) < barrier["n"] and time.monotonic() < deadline:
            time.sleep(0.1)
    for epoch in range(start + 1, int(config["epochs"]) + 1):
        net.train()
        for idx in torch.randperm(len(x)).split(32):
            if len(idx) > 1:
                loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
                optim.zero_grad()
                loss.backward()
                optim.step()
        time.sleep(float(config.get("step_s", 0)))
        net.eval()
        with torch.no_grad():
            acc = float((net(xv).argmax(1) == yv).float().mean())
        # own_models: which models this is (1: models.py, 2: the models/ package)
        metrics = {"val_acc": acc, "own_models": models.MARKER, "tuner_mlp": float(issubclass(MLP, torch.nn.Module))}
        run.report(metrics, state=lambda: {"net": net.state_dict(), "optim": optim.state_dict(), "epoch": epoch})
'''

_PROJECT_NET = '''import torch

def build(features, classes, width):
    """The project's own BN network."""
    return torch.nn.Sequential(
        torch.nn.Linear(features, width), torch.nn.BatchNorm1d(width), torch.nn.ReLU(), torch.nn.Linear(width, classes)
    )
'''


def write_user_project(folder: Path, models: str = "module", **sweep: Any) -> Path:
    """A user's project in ``folder``: ``train.py`` (``fit``) importing the project's own
    ``models`` -- a ``models.py`` (``models="module"``, ``MARKER = 1``) or a ``models/``
    package (``"package"``, ``MARKER = 2``) -- and ``sweep.yaml`` naming ``train:fit``, with
    ``sweep`` keys (dotted) set over a tiny sweep; returns the sweep file's path."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(_PROJECT_TRAIN)
    if models == "module":
        (folder / "models.py").write_text(_PROJECT_NET + "\nMARKER = 1.0\n")
    else:
        (folder / "models").mkdir()
        (folder / "models" / "nets.py").write_text(_PROJECT_NET)
        (folder / "models" / "__init__.py").write_text("from .nets import build\n\nMARKER = 2.0\n")
    raw: dict[str, Any] = {
        "name": "project",
        "metric": "val_acc",
        "mode": "max",
        "function": "train:fit",
        "config": {"epochs": 2, "lr": 0.05, "width": 8},
        "data": {"name": "synthetic", "n_samples": 200, "n_features": 6, "n_classes": 3, "seed": 0},
        "search": {
            "method": "random",
            "num_samples": 2,
            "seed": 0,
            "parameters": {"lr": {"distribution": "log_uniform", "min": 0.01, "max": 0.3}},
        },
        "scheduler": {"name": "none", "max_t": 2},
        "resources": {"cpu": 1, "gpu": 0},
    }
    for key, value in sweep.items():
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
