"""Function overhead: a user's training loop through ``run.report`` vs the same bare loop.

One loop -- a BN-MLP on MNIST-1D's train split, SGD, one thread, an evaluation on the val split
each epoch -- run three ways, alternated A B C A B C so that the machine's noise hits all alike:

- ``bare``: the loop alone in this process (no tuner, no Ray): what the user's code costs.
- ``run.report (in process)``: the same loop as a trial function, reporting its metrics and its
  state (a callable, saved when a checkpoint is due) once an epoch to a ``tuner.Run`` in this
  process: the protocol's own checks, counting and checkpoint rule.
- ``run.report on Ray Tune``: the same function as a trial of a sweep (``tuner.runner.run_sweep``,
  one trial, no scheduler): Ray Tune's trial process, ``tune.report``, the result batching,
  the checkpoints taken by their cost (``torch.save`` and Tune's copy into the trial folder).

Each epoch's *cycle* is timed by the loop itself: from the start of one epoch to the start of
the next, so the report made between them is inside (the first cycle, which warms a fresh
process up and always checkpoints, is left out of every way). The figures are each way's
speed relative to ``bare`` (bare seconds / its seconds) at its fastest cycle (the one least
disturbed by other processes: the estimate ``timeit`` uses; the primary figure on a shared
machine), at its median cycle, and over the whole loop (the wall seconds from its second
epoch's start to its last epoch's end). The goal is >= 0.95 on Ray Tune.

Full size: 5 repetitions × 3 ways × 30 epochs of an MLP [256, 256], batch 128 (~0.1 s an
epoch on an idle core). Quick: 1 repetition × 3 ways × 6 epochs of an MLP [64].
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks import common
from benchmarks.common import Context

FUNCTION = "benchmarks.function_overhead:fit"


def fit(config: dict[str, Any], run: Any) -> None:
    """The user's trial function: the loop of :class:`Loop`, one report an epoch with its state.
    From the second epoch on each report adds ``cycle_s``, the previous epoch's cycle (its
    training, evaluation and report); the last adds ``loop_wall_s``, the seconds since the
    second epoch began."""
    loop = Loop(config, run.data, run.seed)
    for epoch in range(1, int(config["epochs"]) + 1):
        metrics = loop.epoch()
        if loop.cycles:
            metrics["cycle_s"] = loop.cycles[-1]
        if epoch == int(config["epochs"]):
            metrics["loop_wall_s"] = time.perf_counter() - loop.started
        run.report(metrics, state=loop.state)


class Loop:
    """A plain PyTorch training loop (what a user writes): shuffle, forward, cross-entropy,
    backward, step; then the val split's loss and accuracy."""

    def __init__(self, config: dict[str, Any], data: Any, seed: int) -> None:
        import torch

        from tuner.models import MLP, MLPConfig

        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.torch = torch
        dim = int(data.x_train[0].size)
        self.model = MLP(MLPConfig(dim, int(data.num_outputs), tuple(config["hidden"]), True, 0.1))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=float(config["lr"]), momentum=0.9)
        self.x, self.y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        self.xv, self.yv = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
        self.gen = torch.Generator().manual_seed(seed)
        self.batch = int(config["batch_size"])
        self.started = time.perf_counter()
        self.n = 0
        self.mark = 0.0  # when the last epoch started
        self.cycles: list[float] = []  # each epoch's start to the next's (its report inside)

    def epoch(self) -> dict[str, float]:
        torch = self.torch
        now = time.perf_counter()
        if self.n >= 1:
            self.cycles.append(now - self.mark)
        if self.n == 1:  # the whole loop is timed from the second epoch on
            self.started = now
        self.mark = now
        self.n += 1
        self.model.train()
        total = 0.0
        for idx in torch.randperm(len(self.x), generator=self.gen).split(self.batch):
            if len(idx) < 2:
                continue
            loss = torch.nn.functional.cross_entropy(self.model(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * len(idx)
        self.model.eval()
        with torch.no_grad():
            logits = self.model(self.xv)
        return {
            "train_loss": total / len(self.x),
            "val_loss": float(torch.nn.functional.cross_entropy(logits, self.yv)),
            "val_acc": float((logits.argmax(1) == self.yv).float().mean()),
        }

    def state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state()}


def _bare(config: dict[str, Any], data: Any) -> dict[str, Any]:
    loop = Loop(config, data, 0)
    for _ in range(int(config["epochs"])):
        loop.epoch()
    wall = time.perf_counter() - loop.started
    return {"cycles": loop.cycles[1:], "wall_s": wall}  # cycles of epochs 2..N-1


def _in_process(config: dict[str, Any], data: Any) -> dict[str, Any]:
    from tuner.trial import TaskRun, call

    run = TaskRun(metric="val_acc", mode="max", seed=0, data=data)
    call(fit, config, run)
    return {"cycles": [r["cycle_s"] for r in run.reports[2:]], "wall_s": float(run.reports[-1]["loop_wall_s"])}


def _on_ray(ctx: Context, config: dict[str, Any], label: str) -> dict[str, Any]:
    raw = {
        "name": "function_overhead",
        "metric": "val_acc",
        "mode": "max",
        "function": FUNCTION,
        "config": config,
        "data": {"name": "mnist1d", "val_fraction": 0.2},
        "search": {"method": "grid", "parameters": {"lr": {"values": [config["lr"]]}}},
        "scheduler": {"name": "none", "max_t": int(config["epochs"])},
        "resources": {"cpu": 1, "gpu": 0},
    }
    summary = common.run(ctx, raw, label)
    (trial,) = summary.run.trials
    return {"cycles": [h["cycle_s"] for h in trial.history[2:]], "wall_s": float(trial.history[-1]["loop_wall_s"])}


def run(ctx: Context) -> dict[str, Any]:
    from tuner.models.data import load as load_data

    config = {
        "epochs": 6 if ctx.quick else 30,
        "hidden": [64] if ctx.quick else [256, 256],
        "batch_size": 128,
        "lr": 0.05,
    }
    reps = 1 if ctx.quick else 5
    data = load_data({"name": "mnist1d", "val_fraction": 0.2})
    common.ensure_ray()
    _bare({**config, "epochs": 2}, data)  # warm-up: allocator, first calls
    ways = {
        "bare": lambda i: _bare(config, data),
        "run.report (in process)": lambda i: _in_process(config, data),
        "run.report on Ray Tune": lambda i: _on_ray(ctx, config, f"ray-{i}"),
    }
    measured: dict[str, list[dict[str, Any]]] = {k: [] for k in ways}
    for i in range(reps):
        for way, measure in ways.items():
            measured[way].append(measure(i))
    cycles = {k: [c for m in v for c in m["cycles"]] for k, v in measured.items()}
    fastest = {k: min(v) for k, v in cycles.items()}
    median = {k: statistics.median(v) for k, v in cycles.items()}
    walls = {k: statistics.median(m["wall_s"] for m in v) for k, v in measured.items()}
    results = {
        way: {
            "fastest_cycle_s": fastest[way],
            "median_cycle_s": median[way],
            "median_loop_wall_s": walls[way],
            "speed_vs_bare_fastest": fastest["bare"] / fastest[way],
            "speed_vs_bare_median": median["bare"] / median[way],
            "speed_vs_bare_wall": walls["bare"] / walls[way],
            "per_rep_wall_s": [m["wall_s"] for m in measured[way]],
            "cycles_s": cycles[way],
        }
        for way in ways
    }
    ctx.say(
        f"one loop, {config['epochs']} epochs of an MLP {config['hidden']} on MNIST-1D ({len(data.x_train)} "
        f"samples), 1 thread, {reps} repetitions; speed vs bare at the fastest / median cycle / whole loop:"
    )
    for way, r in results.items():
        ctx.say(
            f"  {way:<24} {1000 * r['fastest_cycle_s']:6.1f} ms fastest, {1000 * r['median_cycle_s']:6.1f} ms median"
            f"  speed {r['speed_vs_bare_fastest']:.3f} / {r['speed_vs_bare_median']:.3f} / {r['speed_vs_bare_wall']:.3f}"
        )
    goal = results["run.report on Ray Tune"]["speed_vs_bare_fastest"] >= 0.95
    ctx.say(f"goal: >= 0.95x the bare loop's speed on Ray Tune (fastest cycle): {'met' if goal else 'NOT met'}")
    _plot(ctx, results)
    return {
        "sizes": {"epochs": config["epochs"], "repetitions": reps, "threads": 1, "n_train": len(data.x_train)},
        "config": config,
        "results": results,
        "goal_met": goal,
    }


def _plot(ctx: Context, results: dict[str, Any]) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(results)
    ys = [1000 * results[n]["fastest_cycle_s"] for n in names]
    ax.barh(names, ys, color=["#777", "#4a7", "#47a"])
    for y, n, v in zip(range(len(names)), names, ys):
        label = f"{results[n]['speed_vs_bare_fastest']:.3f}x"
        ax.annotate(label, (v, y), xytext=(3, 0), textcoords="offset points", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("ms per epoch and report, fastest cycle (labels: speed vs bare)")
    ax.set_title("a user's loop: bare vs through run.report")
    common.save(fig, ctx.png())
