"""Optional MLflow tracking of a sweep.

    tuner run sweeps/quickstart.yaml --mlflow-uri sqlite:///mlflow.db

A sweep becomes one parent MLflow run (named after the run directory, tagged with its
path and the sweep's sha256) holding the resolved sweep and, at the end, the export file
as artifacts and the best score as a metric. Each trial becomes a child run (tag
``mlflow.parentRunId``) with its searched parameters and per-epoch metrics, logged by Ray
Tune's MLflow callback on the driver (see :func:`tuner.ray.experiment.run_experiment`). MLflow is an
extra (``pip install 'tuner[mlflow]'``): nothing here imports it before it is asked for.

MLflow 3 keeps its file store (``./mlruns``, ``file:``) in maintenance mode and refuses it
unless ``MLFLOW_ALLOW_FILE_STORE=true``; a local ``sqlite:///path.db`` store or a tracking
server (``http://host:5000``) is the way. A local store keeps artifacts under ``./mlruns``
of the current folder, MLflow's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import InputError, first_line

INSTALL_HINT = "pip install 'tuner[mlflow]'"


def require_mlflow(flag: str = "--mlflow-uri") -> None:
    """Raise :class:`InputError` (one line naming ``flag``) when MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise InputError(f"{flag}: MLflow is not installed; install it with: {INSTALL_HINT}") from None


def check_uri(uri: str, flag: str = "--mlflow-uri") -> None:
    """Refuse, before anything starts, a tracking URI whose scheme MLflow has no store for
    (``nonsense://x``); the store itself is opened (and, for sqlite, created) only when the
    run starts (:func:`start`), which reports what else is wrong with it.

    Raises:
        InputError: MLflow is missing, or knows no tracking store for this scheme.
    """
    require_mlflow(flag)
    try:  # MLflow's registry of tracking stores: not public API, so only used where it is there
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry as registry

        find = registry.get_store_builder
    except (ImportError, AttributeError):
        return
    try:
        find(uri)
    except Exception:  # MLflow raises its own kinds for a scheme it has no store for
        raise InputError(
            f"{flag}: {uri[:200]!r}: MLflow has no tracking store for this kind of address (a folder, "
            "file:, sqlite:, postgresql:, http(s): or databricks, among others)"
        ) from None


@dataclass
class MlflowTarget:
    """Where one round's trials are logged: what Ray Tune's MLflow callback needs."""

    uri: str
    experiment: str
    tags: dict[str, str] = field(default_factory=dict)  # on every trial's run (e.g. its parent)


@dataclass
class SweepTracking:
    """The sweep's parent MLflow run."""

    uri: str
    experiment: str
    experiment_id: str
    run_id: str

    def target(self) -> MlflowTarget:
        """Where the trials go: child runs of this sweep's run."""
        return MlflowTarget(self.uri, self.experiment, {"mlflow.parentRunId": self.run_id})

    def to_dict(self) -> dict[str, str]:
        return {
            "uri": self.uri,
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
        }

    def log_artifact(self, path: str | Path) -> None:
        """Attach a file to the sweep's run."""
        _client(self.uri).log_artifact(self.run_id, str(path))

    def finish(
        self, status: str = "FINISHED", export_path: str | Path | None = None, metrics: dict[str, float] | None = None
    ) -> None:
        """Attach the export file (when there is one), log ``metrics`` and close the sweep's
        run with ``status`` (FINISHED, FAILED or KILLED)."""
        client = _client(self.uri)
        if export_path is not None:
            client.log_artifact(self.run_id, str(export_path))
        for key, value in (metrics or {}).items():
            client.log_metric(self.run_id, key, float(value))
        client.set_terminated(self.run_id, status=status)


def start(uri: str, experiment: str, run_name: str, tags: dict[str, str] | None = None) -> SweepTracking:
    """Open (or create) ``experiment`` in the tracking store at ``uri`` and start the
    sweep's parent run.

    Raises:
        InputError: MLflow is missing, or the store cannot be used (bad scheme, a file store
            MLflow refuses, an unreachable server): one line naming ``--mlflow-uri``.
    """
    require_mlflow()
    try:
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    except Exception as e:  # MLflow raises many kinds here; any of them means this store cannot be used
        raise InputError(
            f"--mlflow-uri: {uri}: cannot use this tracking store ({type(e).__name__}: {first_line(e)})"
        ) from None
    return SweepTracking(uri, experiment, str(experiment_id), run.info.run_id)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)
