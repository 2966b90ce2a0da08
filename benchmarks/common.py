"""What every benchmark shares: its context (size, output folder), the machine it ran on,
quiet sweeps through ``tuner.runner.run_sweep``, retraining a configuration to score it on
the test split, and the figure helpers.

Numbers from this machine are noisy (2 shared cores): each benchmark reports ratios measured
within one run, and records the load average before and after beside its figures.
"""

from __future__ import annotations

import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Context:
    """One benchmark run: its size (``quick`` for the CI smoke test), where its JSON and PNG go,
    and a scratch folder for the run directories it makes."""

    name: str
    quick: bool
    out: Path
    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tuner-bench-")))
    quiet: bool = False

    def say(self, line: str = "") -> None:
        """Print one line of the benchmark's figures."""
        if not self.quiet:
            print(line, flush=True)

    def png(self, suffix: str = "") -> Path:
        """The path of this benchmark's figure (``out/NAME.png`` or ``out/NAME-suffix.png``)."""
        return self.out / f"{self.name}{'-' + suffix if suffix else ''}.png"

    def storage(self, label: str) -> Path:
        """A fresh folder for the run directories of one sweep."""
        path = self.scratch / label
        path.mkdir(parents=True, exist_ok=True)
        return path


def machine() -> dict[str, Any]:
    """Cores, memory, load average and versions: the conditions a figure was measured in."""
    import numpy
    import ray
    import torch

    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "load_avg": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "numpy": numpy.__version__,
        "gpu": torch.cuda.is_available(),
    }


def command(name: str, quick: bool) -> str:
    """The command line that reproduces a benchmark."""
    return f"python -m benchmarks {name}" + (" --quick" if quick else "")


# -- sweeps ------------------------------------------------------------------------------------


def sweep_dict(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """A sweep file as a mapping with dotted-key ``overrides`` applied (validated later by
    :func:`load`)."""
    import yaml

    from tuner.spec import set_dotted

    raw = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    return raw


def load(raw: Mapping[str, Any], source: str = "<benchmark>") -> Any:
    """Validate a sweep mapping into a ``tuner.spec.Sweep``."""
    from tuner.spec import from_dict

    return from_dict(copy.deepcopy(dict(raw)), source=source)


def ensure_ray() -> dict[str, Any]:
    """Start the local Ray instance (every core) before anything is timed, so that wall times
    compare sweeps, not Ray's start-up; later sweeps of the benchmark join it."""
    from tuner.ray import cluster

    return cluster.connect()


def run(ctx: Context, raw: Mapping[str, Any], label: str) -> Any:
    """Run a sweep exactly as ``tuner run`` does (``tuner.runner.run_sweep``), quietly, on
    this machine's local Ray instance (started once, kept for the benchmark's later sweeps).
    Returns the ``RunSummary``."""
    from tuner.runner import run_sweep

    return run_sweep(load(raw), storage=ctx.storage(label), write=lambda line: None)


def round_settings(
    storage: Path,
    name: str,
    trial_args: dict[str, Any],
    params: Sequence[Any],
    trials: int,
    epochs: int = 1,
    label: str = "bench",
) -> Any:
    """``tuner.ray.experiment.ExperimentSettings`` for one round of ``trials`` random
    configurations of ``params`` (``tuner.space.Parameter``) as tuner's experiment runs it:
    ``trial_args`` for ``run_trial`` (function, base, data, metric...), every trial its full
    ``epochs`` (no scheduler), one CPU each, no retries, progress kept silent."""
    from tuner.progress import Progress
    from tuner.ray import experiment
    from tuner.ray.search import RoundSearcher
    from tuner.spec import SchedulerSpec

    metric, mode = trial_args.get("metric", "val_acc"), trial_args.get("mode", "max")
    return experiment.ExperimentSettings(
        storage=storage,
        name=name,
        trial_args=trial_args,
        searcher=RoundSearcher(list(params), "random", [trials], seed=0, metric=metric, mode=mode),
        num_samples=trials,
        metric=metric,
        mode=mode,
        scheduler=SchedulerSpec("none", 1, 3, 1, epochs),
        cpu=1,
        gpu=0,
        max_failures=0,
        on_progress=Progress(metric, mode, epochs, label=label, write=lambda line: None).update,
    )


def epochs_of(summary: Any) -> int:
    """Epochs the trials of a run consumed (the compute a scheduler spends)."""
    return sum(t.epochs for t in summary.run.trials)


def compute_s(summary: Any) -> float:
    """Seconds the trials of a run spent training and evaluating (their ``epoch_s`` summed)."""
    return sum(float(h.get("epoch_s") or 0.0) for t in summary.run.trials for h in t.history)


def result_rows(summary: Any) -> list[list[dict[str, Any]]]:
    """Every trial's ``result.json`` rows (Ray's bookkeeping fields included: ``pid``,
    ``time_this_iter_s``, ``checkpoint_dir_name``...)."""
    import json

    out = []
    for t in summary.run.trials:
        path = Path(t.path) / "result.json"
        out.append([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
    return out


def report_overhead(summary: Any) -> dict[str, Any]:
    """What Ray's bookkeeping shows of a trial's time outside its epochs.

    ``time_this_iter_s`` is measured by Ray from the moment the driver asks the trial for its
    next result until the trial hands it over, so ``time_this_iter_s - epoch_s`` (first
    epochs left out: they include the trial's set-up) is the time spent inside
    ``tune.report`` before the hand-over: saving and copying a checkpoint when one is
    taken. It does *not* include the wait for the driver between two epochs (a function
    trainable's report blocks until the driver has processed it): see
    ``benchmarks.checkpoint_cost`` for that. Also: the worker processes that ran the trials
    (actor reuse), the checkpoints taken, the trials' set-up before their first epoch."""
    rows = result_rows(summary)
    gaps = [r["time_this_iter_s"] - r["epoch_s"] for t in rows for r in t[1:] if "epoch_s" in r]
    epochs = [r["epoch_s"] for t in rows for r in t if "epoch_s" in r]
    setup = [t[0]["time_this_iter_s"] - t[0].get("epoch_s", 0.0) for t in rows if t]
    return {
        "in_report_median_s": statistics.median(gaps) if gaps else None,
        "in_report_mean_s": statistics.fmean(gaps) if gaps else None,
        "median_epoch_s": statistics.median(epochs) if epochs else None,
        "median_trial_setup_s": statistics.median(setup) if setup else None,
        "max_trial_setup_s": max(setup) if setup else None,
        "worker_processes": len({r.get("pid") for t in rows for r in t}),
        "checkpoints": sum(1 for t in rows for r in t if r.get("checkpoint_dir_name")),
    }


def best_config(summary: Any) -> tuple[Any, dict[str, Any]]:
    """The best trial of a run and its whole resolved config (``data``/``model``/``train``)."""
    from tuner.space import apply_params

    best = summary.run.ranked()[0]
    sweep = summary.run.sweep
    return best, {"data": sweep.data, **apply_params(sweep.base_config(), best.params)}


def score(configs: Sequence[Mapping[str, Any]], seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Retrain each config for its full budget on the train split and score it on val and test
    (``tuner.ray.worker.seed_task``: the code ``tuner retest`` runs), all in parallel as Ray
    tasks, one CPU each. ``seeds`` (default: each config's own ``train.seed``) sets the
    initialisation and batch order; with the config's own seed the retrained model is the
    search trial's model again."""
    from tuner.models.data import load as load_data
    from tuner.ray import cluster
    from tuner.ray.worker import run_tasks, seed_task

    cluster.connect()
    calls = []
    datasets: dict[str, Any] = {}
    for i, cfg in enumerate(configs):
        key = repr(sorted(cfg["data"].items()))
        if key not in datasets:
            datasets[key] = load_data(cfg["data"])
        seed = int(cfg["train"].get("seed", 0)) if seeds is None else int(seeds[i])
        calls.append({"cfg": cfg, "seed": seed, "key": key})
    results: list[dict[str, Any]] = [{}] * len(calls)
    # one run_tasks call per data set: each data set goes through the object store once
    for key, data in datasets.items():
        idx = [i for i, c in enumerate(calls) if c["key"] == key]
        out = run_tasks(
            seed_task,
            [
                {
                    "function": "tuner.models.train:fit",
                    "metric": "val_acc",
                    "mode": "max",
                    "config": {k: calls[i]["cfg"][k] for k in ("model", "train")},
                    "seed": calls[i]["seed"],
                }
                for i in idx
            ],
            shared={"data": data},
            cpu=1,
            gpu=0,
        )
        for i, r in zip(idx, out):
            if "error" in r:
                raise RuntimeError(r["error"])
            results[i] = {"seed": r["seed"], "diverged": r["diverged"], "seconds": r["seconds"], **r["metrics"]}
    return results


# -- timing ------------------------------------------------------------------------------------


class Timer:
    """``with Timer() as t: ...`` then ``t.s``: wall seconds (monotonic clock)."""

    def __enter__(self) -> Timer:
        self.start = time.monotonic()
        self.s = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.s = time.monotonic() - self.start


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for fewer than two values)."""
    xs = [float(x) for x in xs]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def pm(xs: Sequence[float], digits: int = 3) -> str:
    """``mean ± std`` of ``xs``."""
    m, s = mean_std(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


# -- figures -----------------------------------------------------------------------------------


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    """Write a figure as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> Iterator[str]:
    """Lines of a plain text table (columns padded to their widest cell)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        yield "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
        if j == 0:
            yield "  ".join("-" * w for w in widths)


def quiet_ray_output() -> None:
    """Keep Ray's worker output off the benchmark's figures."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")


def progress(ctx: Context, label: str) -> Callable[[str], None]:
    """A ``write`` function prefixing lines with ``label`` (for long benchmarks)."""
    return lambda line: ctx.say(f"  [{label}] {line}")


def python() -> str:
    return sys.executable
