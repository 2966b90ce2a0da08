"""Importable helpers for tests: a user's data function and model function."""

from __future__ import annotations

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
    def __init__(self, net: nn.Module, marker: str, fail_at_batch: int) -> None:
        super().__init__()
        self.net, self.marker, self.fail_at_batch, self.batches = net, marker, fail_at_batch, 0

    def forward(self, x: Any) -> Any:
        if self.training:
            self.batches += 1
            if self.batches == self.fail_at_batch and not Path(self.marker).exists():
                Path(self.marker).write_text("failed once\n")
                raise RuntimeError("flaky_net: the planned failure")
        return self.net(x)


def flaky_net(input_shape: tuple[int, ...], num_classes: int, marker: str, fail_at_batch: int) -> nn.Module:
    """A user's model that raises once, at its ``fail_at_batch``-th training batch, unless
    ``marker`` exists (it creates it): a trial failure to restore from."""
    return _Flaky(tiny_net(input_shape, num_classes), marker, fail_at_batch)
