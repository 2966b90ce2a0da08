"""tuner: hyperparameter sweeps of PyTorch batch-norm networks on Ray Tune.

The Python API mirrors the command line, for notebooks::

    import tuner

    summary = tuner.run("sweeps/quickstart.yaml", storage="runs")   # tuner run; prints its summary
    trials = tuner.load_run(summary.run_dir)                         # one row per trial (pandas)
    best = tuner.load_best(summary.export_path)                      # the export file
    entry = tuner.retest(summary.export_path, seeds=3)               # tuner retest
    metrics = tuner.train(summary.export_path, "model.pt")           # tuner train
    model, info = tuner.load_model("model.pt")                       # eval mode, with its metadata

A sweep may train a function of the user's, ``fit(config: dict, run: tuner.Run)``; see
:class:`tuner.Run`. Importing tuner does nothing else: no environment change, no Ray.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import pandas
    import torch

    from tuner.model_file import ModelFile
    from tuner.records import Export, RetestEntry
    from tuner.runner import RunSummary
    from tuner.spec import Sweep
    from tuner.trial import Run

_F = TypeVar("_F", bound=Callable[..., Any])

__version__ = "0.2.0"
__all__ = [
    "run",
    "resume",
    "export",
    "load_best",
    "load_run",
    "load_model",
    "load_sweep",
    "retest",
    "train",
    "evaluate",
    "try_trial",
    "Run",
    "__version__",
]


def _interruptible(function: _F) -> _F:
    """``function`` with Ctrl-C kept out of every import it makes (:func:`tuner.signals.ctrl_c_taken`):
    in a notebook's kernel, a module whose import a Ctrl-C cut short stays half made for every
    later call."""

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        from tuner import signals

        with signals.ctrl_c_taken():
            return function(*args, **kwargs)

    return cast(_F, call)


def __getattr__(name: str) -> Any:
    if name == "Run":  # the trial protocol, imported on first use
        from tuner.trial import Run

        return Run
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")


@_interruptible
def load_sweep(path: str | os.PathLike[str], **overrides: Any) -> Sweep:
    """Read and validate a sweep file (``InputError`` lists every problem); ``overrides`` are
    dotted keys, e.g. ``load_sweep("s.yaml", **{"search.num_samples": 8})``."""
    from tuner import arguments
    from tuner.export_file import load_sweep as _load

    return _load(arguments.path(path, "path"), overrides)


def _sweep(sweep: str | os.PathLike[str] | Mapping[str, Any] | Sweep, overrides: dict[str, Any]) -> Sweep:
    import copy

    from tuner import arguments
    from tuner.errors import InputError, show
    from tuner.export_file import load_sweep as _load
    from tuner.spec import Sweep, apply_overrides, from_dict

    if not isinstance(sweep, (Sweep, Mapping, str, os.PathLike)):
        raise InputError(f"sweep: {show(sweep, 40)} must be a sweep file's path, a mapping in its form or a Sweep")
    if isinstance(sweep, Mapping):
        arguments.mapping(sweep, "sweep")
    if isinstance(sweep, (Sweep, Mapping)):
        raw = sweep.to_dict() if isinstance(sweep, Sweep) else copy.deepcopy(dict(sweep))
        apply_overrides(raw, overrides, sweep.source if isinstance(sweep, Sweep) else "<dict>")
        if isinstance(sweep, Sweep):
            return from_dict(
                raw,
                source=sweep.source,
                sha256=sweep.sha256,
                base_dir=sweep.base_dir,
                overrides={**sweep.overrides, **overrides},
            )
        return from_dict(raw, source="<dict>", base_dir=Path.cwd(), overrides=overrides)
    return _load(arguments.path(sweep, "sweep"), overrides)


@_interruptible
def run(
    sweep: str | os.PathLike[str] | Mapping[str, Any] | Sweep,
    storage: str | os.PathLike[str] = "runs",
    address: str | None = None,
    name: str | None = None,
    num_samples: int | None = None,
    num_cpus: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    quiet: bool = False,
    write: Callable[[str], None] | None = None,
    mlflow_uri: str | None = None,
    mlflow_experiment: str | None = None,
) -> RunSummary:
    """Run a sweep (a file, a mapping in the sweep-file form, or a loaded ``Sweep``) on Ray and
    export its best configuration, like ``tuner run``; prints its progress and end summary
    unless ``quiet``. Returns the run directory, export path, trials and wall time.

    ``address`` joins a cluster (default: a local instance); ``overrides`` are dotted keys
    (``{"train.epochs": 5}``, ``--set``); ``mlflow_uri`` also logs it to MLflow.
    """
    from tuner import arguments
    from tuner.runner import run_sweep

    changes = arguments.mapping(overrides, "overrides", ' (dotted keys: {"train.epochs": 5})') or {}
    if arguments.text(name, "name") is not None:  # an empty name is refused, as --name "" is
        changes["name"] = name
    if arguments.optional_integer(num_samples, "num_samples", 1) is not None:
        changes["search.num_samples"] = num_samples
    arguments.path(storage, "storage")
    arguments.text(address, "address")
    arguments.optional_integer(num_cpus, "num_cpus", 1)
    quiet = arguments.flag(quiet, "quiet")
    arguments.function(write, "write")
    arguments.text(mlflow_uri, "mlflow_uri")
    arguments.text(mlflow_experiment, "mlflow_experiment")
    say = write or ((lambda _: None) if quiet else print)
    summary = run_sweep(
        _sweep(sweep, changes),
        storage=storage,
        address=address,
        num_cpus=num_cpus,
        write=say,
        mlflow_uri=mlflow_uri,
        mlflow_experiment=mlflow_experiment,
    )
    if not quiet:
        for line in summary.lines():
            say(line)
    return summary


@_interruptible
def try_trial(
    sweep: str | os.PathLike[str] | Mapping[str, Any] | Sweep,
    epochs: int | None = None,
    write: Callable[[str], None] = print,
) -> Run:
    """One trial of the sweep's base configuration in this process, without Ray, like
    ``tuner try``: its reports are printed as they come and its exceptions raised as they are.
    Returns the run (``run.reports`` holds every report)."""
    from tuner import arguments
    from tuner.local import try_trial as _try

    arguments.optional_integer(epochs, "epochs", 1)
    arguments.function(write, "write")
    return _try(_sweep(sweep, {}), epochs, write)


@_interruptible
def resume(
    run_dir: str | os.PathLike[str],
    address: str | None = None,
    num_cpus: int | None = None,
    write: Callable[[str], None] = print,
) -> RunSummary:
    """Finish an interrupted run from its saved state; like ``tuner resume``. The run
    directory holds pickled state that this unpickles: only resume runs from a trusted source."""
    from tuner import arguments
    from tuner.resuming import resume_sweep

    arguments.path(run_dir, "run_dir")
    arguments.text(address, "address")
    arguments.optional_integer(num_cpus, "num_cpus", 1)
    arguments.function(write, "write")
    return resume_sweep(run_dir, address=address, num_cpus=num_cpus, write=write)


@_interruptible
def export(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    top_k: int = 5,
    fmt: str | None = None,
) -> Path:
    """Write a run's export file (default ``RUN_DIR/best.yaml``) with its best ``top_k`` (>= 1)
    configurations, as YAML or JSON (``fmt``, default: from the file name); like ``tuner
    export``. An ``output`` that is a file of the run directory is refused (nothing written)."""
    from tuner import arguments
    from tuner.export_file import FORMATS, export_run

    arguments.path(run_dir, "run_dir")
    if output is not None:
        arguments.path(output, "output")
    arguments.integer(top_k, "top_k", 1)
    if fmt is not None:
        arguments.choice(fmt, "fmt", FORMATS)
    return export_run(run_dir, output, top_k, fmt)


@_interruptible
def load_best(path: str | os.PathLike[str]) -> Export:
    """An export file: ``metric``, ``mode``, ``score``, ``params``, ``config``, ``top``,
    ``provenance`` (and ``retest`` once re-tested); ``.to_dict()`` gives it as a mapping."""
    from tuner import arguments
    from tuner.export_file import read

    return read(arguments.path(path, "path"))


@_interruptible
def load_run(run_dir: str | os.PathLike[str], per: str = "trial") -> pandas.DataFrame:
    """A run directory's trials as a pandas DataFrame: ``per="trial"`` one row per trial
    (id, round, status, epochs, score, every searched value and the last of every metric);
    ``per="epoch"`` one row per reported epoch."""
    from tuner import arguments
    from tuner.frames import trials_frame

    if not hasattr(run_dir, "run_dir"):  # what tuner.run returned is taken as well
        arguments.path(run_dir, "run_dir")
    return trials_frame(run_dir, arguments.choice(per, "per", ("trial", "epoch")))


@_interruptible
def load_model(
    path: str | os.PathLike[str], device: str | None = "cpu", trust_code: bool = False
) -> tuple[torch.nn.Module, ModelFile]:
    """A model file written by :func:`train`: the network in eval mode on ``device`` and what
    the file says of it (config, metrics, data fingerprint). A model file is data: one naming a
    user's model function is refused unless ``trust_code``; ``device``: ``"cpu"``, ``"cuda"``,
    a ``torch.device`` or None (CUDA when available)."""
    from tuner import arguments
    from tuner.model_file import load_model as _load

    arguments.path(path, "path")
    arguments.device(device, "device")
    return _load(path, device, arguments.flag(trust_code, "trust_code"))


@_interruptible
def retest(
    export_path: str | os.PathLike[str],
    seeds: int = 3,
    top_k: int | None = None,
    data: Mapping[str, Any] | None = None,
    address: str | None = None,
    tolerance: float = 0.02,
    write: Callable[[str], None] = print,
) -> RetestEntry:
    """Re-test an export's top configurations with fresh seeds (like ``tuner retest``); returns
    the retest entry: ranking with mean, std and 95% CI, ``ranking_changed``, ``drift``.

    ``seeds``: fresh seeds per configuration, 2 to 1000; ``top_k``: how many of the export's
    ``top`` (>= 1, default all); ``data``: overrides of its data section (``{"seed": 7}``);
    ``tolerance``: a drop of the best's mean beyond it (metric units, >= 0) is drift."""
    from tuner import arguments
    from tuner.retesting import MAX_RETEST_SEEDS
    from tuner.retesting import retest as _retest

    arguments.path(export_path, "export_path")
    arguments.integer(seeds, "seeds", 2, MAX_RETEST_SEEDS, why=" (a confidence interval needs two seeds)")
    arguments.optional_integer(top_k, "top_k", 1)
    data = arguments.mapping(data, "data", _DATA_EXAMPLE)
    arguments.text(address, "address")
    tolerance = arguments.number(tolerance, "tolerance", low=0)
    arguments.function(write, "write")
    return _retest(export_path, seeds=seeds, top_k=top_k, data=data, address=address, tolerance=tolerance, write=write)


@_interruptible
def train(
    export_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    data: Mapping[str, Any] | None = None,
    device: str | None = None,
    write: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train the export's best configuration on train+val, save it to ``output`` (never the
    export itself); returns its test metrics. ``data``: overrides of its data section;
    ``device``: ``"cpu"``, ``"cuda"``, a ``torch.device`` or None (CUDA when available)."""
    from tuner import arguments
    from tuner.final import train as _train

    arguments.path(export_path, "export_path")
    arguments.path(output, "output")
    data = arguments.mapping(data, "data", _DATA_EXAMPLE)
    arguments.device(device, "device")
    arguments.function(write, "write")
    return _train(export_path, output, data=data, device=device, write=write)


@_interruptible
def evaluate(
    model_path: str | os.PathLike[str],
    data: Mapping[str, Any] | None = None,
    device: str | None = None,
    trust_code: bool = False,
) -> dict[str, Any]:
    """Test metrics of a model file written by :func:`train` (``data``: overrides of its data
    section; ``device`` and ``trust_code`` as for :func:`load_model`)."""
    from tuner import arguments
    from tuner.final import evaluate_file

    arguments.path(model_path, "model_path")
    data = arguments.mapping(data, "data", _DATA_EXAMPLE)
    arguments.device(device, "device")
    trust_code = arguments.flag(trust_code, "trust_code")
    return evaluate_file(model_path, data=data, device=device, trust_code=trust_code)


_DATA_EXAMPLE = ' (overrides of the data section, e.g. {"seed": 7})'
