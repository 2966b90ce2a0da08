"""Trial speed: samples/second of the project's training loop against a bare PyTorch loop.

The same network (``models.build_model``), data (MNIST-1D train split, tensors in memory), SGD
settings, batch size and batch order, on one thread (a trial's 1 CPU). Three loops, their
epochs interleaved round-robin so that the machine's noise hits all alike:

- ``bare``: shuffle, index a batch, forward, cross-entropy, zero_grad, backward, step; then
  evaluate on the val split. Nothing else.
- ``trainer``: ``tuner.models.train.Trainer.step()``, what a trial runs each epoch (it also reads
  each batch's loss to catch divergence, and averages the epoch's loss).
- ``trainer+ckpt``: the same plus ``torch.save`` of the trainer's whole state to a fresh
  temporary folder, as a trial that checkpoints every epoch does before reporting.

Reported per network: training samples/s (n_train / epoch seconds, the val evaluation
included) of each loop at its fastest epoch (the least disturbed by other processes: the
estimate ``timeit`` uses) and at its median epoch, and the ratio of each to ``bare``'s.

Full size: 2 networks × 3 loops × 30 epochs (after 1 warm-up epoch). Quick: 1 network × 3 epochs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from benchmarks import common
from benchmarks.common import Context

NETWORKS = {
    "mlp [256, 256], batch 128": {"name": "mlp", "hidden": [256, 256], "batch_norm": True},
    "cnn [32, 32] k5, batch 128": {"name": "cnn", "hidden": [32, 32], "kernel_size": 5, "batch_norm": True},
}
TRAIN = {
    "epochs": 20,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "seed": 0,
}


class Bare:
    """The bare PyTorch loop (no Trainer): what the project's loop is measured against."""

    def __init__(self, model_cfg: dict[str, Any], data: Any) -> None:
        import torch

        from tuner.models import build_model

        torch.manual_seed(0)
        self.torch = torch
        self.model = build_model(model_cfg, data.input_shape, data.num_classes)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=TRAIN["lr"], momentum=TRAIN["momentum"], weight_decay=TRAIN["weight_decay"]
        )
        self.x, self.y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        self.xv, self.yv = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
        self.gen = torch.Generator().manual_seed(0)
        self.loss = torch.nn.CrossEntropyLoss()

    def step(self) -> None:
        torch, bs = self.torch, TRAIN["batch_size"]
        self.model.train()
        order = torch.randperm(len(self.x), generator=self.gen)
        for start in range(0, len(self.x), bs):
            idx = order[start : start + bs]
            loss = self.loss(self.model(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.xv)
            torch.nn.functional.cross_entropy(logits, self.yv).item()
            (logits.argmax(1) == self.yv).sum().item()


def run(ctx: Context) -> dict[str, Any]:
    import torch

    from tuner.models.data import load as load_data
    from tuner.models.train import Trainer

    torch.set_num_threads(1)
    data = load_data({"name": "mnist1d", "val_fraction": 0.2})
    networks = dict(list(NETWORKS.items())[:1]) if ctx.quick else NETWORKS
    epochs = 3 if ctx.quick else 30
    n = len(data.x_train)
    results: dict[str, Any] = {}
    for label, model_cfg in networks.items():
        trainer = Trainer(model_cfg, TRAIN, data, device="cpu")
        ckpt_trainer = Trainer(model_cfg, TRAIN, data, device="cpu")
        bare = Bare(model_cfg, data)

        def with_checkpoint(ckpt_trainer: Trainer = ckpt_trainer) -> None:
            ckpt_trainer.step()
            with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as d:
                torch.save(ckpt_trainer.state_dict(), os.path.join(d, "state.pt"))

        loops = {"bare": bare.step, "trainer": trainer.step, "trainer+ckpt": with_checkpoint}
        times: dict[str, list[float]] = {k: [] for k in loops}
        for fn in loops.values():  # warm-up epoch (allocator, first-call overheads), not timed
            fn()
        for _ in range(epochs):
            for key, fn in loops.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        low = {k: min(v) for k, v in times.items()}
        row = {
            k: {
                "min_epoch_s": low[k],
                "median_epoch_s": med[k],
                "samples_per_s": n / low[k],
                "median_samples_per_s": n / med[k],
                "ratio_to_bare": low["bare"] / low[k],
                "median_ratio_to_bare": med["bare"] / med[k],
                "epoch_s": times[k],
            }
            for k in loops
        }
        results[label] = row
        ctx.say(f"{label}:")
        for k in loops:
            ctx.say(
                f"  {k:<13} {row[k]['samples_per_s']:>8,.0f} samples/s fastest epoch ({row[k]['ratio_to_bare']:.1%} "
                f"of bare), {row[k]['median_samples_per_s']:>8,.0f} median ({row[k]['median_ratio_to_bare']:.1%})"
            )
    _plot(ctx, results)
    return {"sizes": {"epochs": epochs, "n_train": n, "threads": 1}, "train": TRAIN, "results": results}


def _plot(ctx: Context, results: dict[str, Any]) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    loops = ["bare", "trainer", "trainer+ckpt"]
    width = 0.8 / len(loops)
    for j, loop in enumerate(loops):
        xs = [i + (j - 1) * width for i in range(len(results))]
        ys = [r[loop]["samples_per_s"] for r in results.values()]
        bars = ax.bar(xs, ys, width=width, label=loop)
        for x, (r, y) in zip(xs, zip(results.values(), ys)):
            ax.annotate(
                f"{r[loop]['ratio_to_bare']:.0%}",
                (x, y),
                ha="center",
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 2),
            )
        del bars
    ax.set_xticks(range(len(results)), list(results))
    ax.set_ylabel("training samples / s, fastest epoch (1 thread)")
    ax.set_title("project loop vs bare PyTorch (labels: share of bare's speed)")
    ax.legend(fontsize=8)
    common.save(fig, ctx.png())
