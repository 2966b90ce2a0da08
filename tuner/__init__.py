"""tuner: hyperparameter sweeps of PyTorch batch-norm networks on Ray Tune.

The Python API mirrors the command line, for notebooks::

    import tuner

    summary = tuner.run("sweeps/quickstart.yaml", storage="runs")   # tuner run
    best = tuner.load_best(summary.export_path)                      # the export as a mapping
    entry = tuner.retest(summary.export_path, seeds=3)               # tuner retest
    metrics = tuner.train(summary.export_path, "model.pt")           # tuner train
    tuner.evaluate("model.pt")                                        # tuner evaluate
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from tuner.runner import RunSummary
    from tuner.spec import Sweep

__version__ = "0.1.0"
__all__ = ["run", "resume", "export", "load_best", "retest", "train", "evaluate", "load_sweep", "__version__"]


def load_sweep(path: str | os.PathLike[str], **overrides: Any) -> Sweep:
    """Read and validate a sweep file (``InputError`` lists every problem); ``overrides`` are
    dotted keys, e.g. ``load_sweep("s.yaml", **{"search.num_samples": 8})``."""
    from tuner.spec import load_sweep as _load

    return _load(path, overrides)


def run(sweep: str | os.PathLike[str] | Mapping[str, Any] | Sweep, storage: str | os.PathLike[str] = "runs",
        address: str | None = None, name: str | None = None, num_samples: int | None = None,
        num_cpus: int | None = None, write: Callable[[str], None] = print, mlflow_uri: str | None = None,
        mlflow_experiment: str | None = None) -> RunSummary:
    """Run a sweep (a file, a mapping in the sweep-file form, or a loaded ``Sweep``) on Ray and
    export its best configuration; returns the run directory, export path, trials and wall time.
    Like ``tuner run``; ``address`` joins a cluster (default: a local instance); ``mlflow_uri``
    also logs it to MLflow (``--mlflow-uri``)."""
    import copy

    from tuner.runner import run_sweep
    from tuner.spec import Sweep, from_dict, set_dotted
    from tuner.spec import load_sweep as _load

    overrides: dict[str, Any] = {}
    if name:
        overrides["name"] = name
    if num_samples:
        overrides["search.num_samples"] = num_samples
    if isinstance(sweep, (Sweep, Mapping)):
        raw = sweep.to_dict() if isinstance(sweep, Sweep) else copy.deepcopy(dict(sweep))
        for key, value in overrides.items():
            set_dotted(raw, key, value)
        spec = from_dict(raw, source=sweep.source if isinstance(sweep, Sweep) else "<dict>",
                         sha256=sweep.sha256 if isinstance(sweep, Sweep) else "")
    else:
        spec = _load(sweep, overrides)
    return run_sweep(spec, storage=storage, address=address, num_cpus=num_cpus, write=write, mlflow_uri=mlflow_uri,
                     mlflow_experiment=mlflow_experiment)


def resume(run_dir: str | os.PathLike[str], address: str | None = None, num_cpus: int | None = None,
           write: Callable[[str], None] = print) -> RunSummary:
    """Finish an interrupted run from its saved state; like ``tuner resume``. The run
    directory holds pickled state that this unpickles: only resume runs from a trusted source."""
    from tuner.runner import resume_sweep

    return resume_sweep(run_dir, address=address, num_cpus=num_cpus, write=write)


def export(run_dir: str | os.PathLike[str], output: str | os.PathLike[str] | None = None, top_k: int = 5,
           fmt: str | None = None) -> Path:
    """Write a run's export file (default ``RUN_DIR/best.yaml``); like ``tuner export``."""
    from tuner.export_file import export_run

    return export_run(run_dir, output, top_k, fmt)


def load_best(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An export file as a mapping: ``metric``, ``mode``, ``score``, ``params``, ``config``,
    ``top``, ``provenance`` (and ``retest`` once re-tested)."""
    from tuner.export_file import load

    return load(path)


def retest(export_path: str | os.PathLike[str], seeds: int = 3, top_k: int | None = None,
           data: Mapping[str, Any] | None = None, address: str | None = None, tolerance: float = 0.02,
           write: Callable[[str], None] = print) -> dict[str, Any]:
    """Re-test an export's top configurations with fresh seeds (like ``tuner retest``); returns
    the retest entry: ranking with mean, std and 95% CI, ``ranking_changed``, ``drift``."""
    from tuner.retesting import retest as _retest

    return _retest(export_path, seeds=seeds, top_k=top_k, data=data, address=address, tolerance=tolerance,
                   write=write)


def train(export_path: str | os.PathLike[str], output: str | os.PathLike[str],
          data: Mapping[str, Any] | None = None, device: str | None = None,
          write: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the export's best configuration on train+val, save it; returns its test metrics."""
    from tuner.final import train as _train

    return _train(export_path, output, data=data, device=device, write=write)


def evaluate(model_path: str | os.PathLike[str], data: Mapping[str, Any] | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Test loss and accuracy of a model file written by :func:`train`."""
    from tuner.final import evaluate_file

    return evaluate_file(model_path, data=data, device=device)
