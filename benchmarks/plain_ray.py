"""Baselines for the orchestration benchmark that talk to Ray directly.

Outside ``tuner/`` (whose Ray calls stay in ``tuner/ray/``) on
purpose: this is what a user would write by hand from Ray Tune's examples, the yardstick the
project's own path is measured against. Not used by ``tuner`` itself.

- :func:`run_plain`: a plain Ray Tune script running given configurations for their full
  budget: a function trainable that builds the ``tuner.models.train.Trainer``, trains an epoch,
  reports, repeats; the data shipped with ``tune.with_parameters``; Ray's defaults otherwise
  (FIFO, no checkpoints, ``reuse_actors`` False), and the same with ``reuse_actors=True``.
- :func:`sleep_fit`: the trial function of the scale run: sleeps ``seconds`` and reports once
  (Ray's own bookkeeping release test does the same), run through ``tuner.ray.experiment.run_experiment``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def train_fn(config: dict[str, Any], data: Any) -> None:
    """The hand-written trainable: one report per epoch."""
    import torch
    from ray import tune

    from tuner.models.train import Trainer

    torch.set_num_threads(1)
    cfg = config["cfg"]
    trainer = Trainer(cfg["model"], cfg["train"], data, device="cpu")
    for _ in range(int(cfg["train"]["epochs"])):
        start = time.perf_counter()
        m = trainer.step()
        tune.report(
            {
                "val_acc": m["val_acc"],
                "val_loss": m["val_loss"],
                "epoch": trainer.epoch,
                "epoch_s": time.perf_counter() - start,
            }
        )


def run_plain(
    configs: Sequence[dict[str, Any]], data: Any, storage: Path, reuse_actors: bool = False
) -> dict[str, Any]:
    """Run every config (a resolved ``data``/``model``/``train`` mapping) once with a plain
    Ray Tune script (Ray's default ``reuse_actors=False``, or True); returns wall seconds,
    compute seconds (Σ epoch_s) and worker processes."""
    from ray import tune

    trainable = tune.with_resources(tune.with_parameters(train_fn, data=data), {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"cfg": tune.grid_search(list(configs))},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=f"plain-{int(reuse_actors)}", storage_path=str(storage), verbose=0),
    )
    start = time.monotonic()
    grid = tuner.fit()
    wall = time.monotonic() - start
    compute, pids, epochs = 0.0, set(), 0
    for result in grid:
        df = result.metrics_dataframe
        compute += float(df["epoch_s"].sum())
        epochs += len(df)
        pids.update(int(p) for p in df["pid"])
    return {"wall_s": wall, "compute_s": compute, "epochs": epochs, "trials": len(grid), "worker_processes": len(pids)}


def sleep_fit(config: dict[str, Any], run: Any) -> None:
    """A trial function that sleeps ``config["seconds"]`` (no CPU), then reports once: a trial
    that is pure bookkeeping. Also reported: the CPU seconds its worker process had spent when
    the trial began (its start and imports, for its first trial), and the wall-clock times the
    function began and reported (``driver_scale`` finds the gaps between trials from them).
    ``import_torch`` set: torch imported first, as every trial's process did before
    ``tuner.ray.worker.limit_threads``."""
    began = time.time()
    if config.get("import_torch"):
        import torch  # noqa: F401

    process_cpu_s = time.process_time()
    time.sleep(float(config["seconds"]))
    figures = {"process_cpu_s": process_cpu_s, "began": began, "reported": time.time()}
    run.report({"val_acc": float(config.get("x", 0.0)), **figures})


def sleep_trainable(config: dict[str, Any]) -> None:
    """The plain script's sleeping trial: sleep ``config["seconds"]``, report once."""
    from ray import tune

    time.sleep(float(config["seconds"]))
    tune.report({"val_acc": float(config["x"])})


def run_sleep(trials: int, seconds: float, storage: Path) -> None:
    """``trials`` sleeping trials through a plain Ray Tune script with actor reuse (Ray's
    defaults otherwise: random search, FIFO, its own snapshot period)."""
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(sleep_trainable, {"cpu": 1}),
        param_space={"x": tune.uniform(0.0, 1.0), "seconds": seconds},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(name="plain-sleep", storage_path=str(storage), verbose=0),
    )
    tuner.fit()
