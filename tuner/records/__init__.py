"""Everything a run writes and reads, once: file names, statuses, metric keys and typed records.

A run directory (``runs/<name>``) holds::

    sweep.yaml          SWEEP_FILE   the resolved sweep, every default written out
    run.json            RUN_FILE     RunMeta: status, times, rounds, provenance
    trials/             EXPERIMENT_DIR: Ray Tune's experiment, every round (a folder per trial)
    trials/asha-rungs.json  RUNGS_FILE
    trials/<trial>/output.txt  OUTPUT_FILE  what the trial function printed
    trials/<trial>/timed-out.txt  TIMEOUT_FILE  why the trial's process was ended (trial_timeout)
    trials/<trial>/timed-out.trace  TIMEOUT_TRACE_FILE  where its threads hung, when Python could not say it
    .driver.lock        tuner.lock.LOCK_FILE  held by the driver running the run
    best.yaml           EXPORT_FILE  Export: the best configuration, the top k, provenance
    best.retest.jsonl   history_path(): one RetestEntry a line
    optuna.journal      JOURNAL_FILE the trials as an Optuna journal (optuna-dashboard)
    report/             REPORT_DIR

Each record reads itself from plain data with :meth:`from_dict` (checking every field's type
with :class:`~tuner.records.fields.Fields`, so a damaged or hostile file is bad input naming
the file and key, never a traceback) and writes itself with :meth:`to_dict`:
:mod:`~tuner.records.run` (``run.json``, the trials) and :mod:`~tuner.records.export` (the
export file and its retests).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from pathlib import Path

# -- files of a run directory -----------------------------------------------------------------

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.yaml"
EXPORT_FILE = "best.yaml"
RUNGS_FILE = "asha-rungs.json"
EXPERIMENT_DIR = "trials"  # the one Ray Tune experiment holding every round's trials
JOURNAL_FILE = "optuna.journal"
OUTPUT_FILE = "output.txt"  # in a trial's folder: what its function printed
TIMEOUT_FILE = "timed-out.txt"  # in a trial's folder: the trial went trial_timeout seconds without a report
TIMEOUT_TRACE_FILE = "timed-out.trace"  # faulthandler's stacks, when a call starved the Python watcher
REPORT_DIR = "report"
RETEST_SUFFIX = ".retest.jsonl"


def history_path(export_path: str | Path) -> Path:
    """An export's retest history beside it: ``best.yaml`` -> ``best.retest.jsonl``."""
    p = Path(export_path)
    return p.with_name(p.stem + RETEST_SUFFIX)


def now() -> str:
    """The current time as the records write it (UTC, ISO 8601, seconds)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- statuses ---------------------------------------------------------------------------------


class RunStatus(str, enum.Enum):
    """A run's status in ``run.json``."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class TrialStatus(str, enum.Enum):
    """How a trial ended, as its files tell it."""

    FINISHED = "finished"  # ran its full budget
    STOPPED = "stopped"  # stopped early by ASHA
    DIVERGED = "diverged"  # a loss turned NaN or infinite
    ERROR = "error"  # failed (its function raised, its process died)
    RUNNING = "running"  # still going (or cut short by a killed driver)


# -- the keys a trial reports -----------------------------------------------------------------

EPOCH = "epoch"  # the ASHA time unit: 1, 2, ... (one report an epoch)
# The round a trial belongs to, in its searched config (params.json); never handed to its function.
ROUND_KEY = "__round__"
DIVERGED = "diverged"  # True on the report of a trial whose metric turned non-finite
# What tuner adds to every report: where and how fast the epoch ran.
EPOCH_S = "epoch_s"
SAMPLES_PER_S = "samples_per_s"
NODE_ID = "node_id"
DEVICE = "device"
THREADS = "threads"
RESERVED = (EPOCH, DIVERGED, EPOCH_S, NODE_ID, DEVICE, THREADS)  # set by tuner: not a trial's to report
BOOKKEEPING = (*RESERVED, SAMPLES_PER_S)  # reported keys that are not metrics
# Keys of Ray Tune's own in a result row (not the trial's metrics).
RAY_KEYS = frozenset(
    {
        "timestamp",
        "checkpoint_dir_name",
        "should_checkpoint",
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "experiment_tag",
        "episodes_total",  # the rest of Ray Tune's AUTO_RESULT_KEYS (a test checks them)
        "episodes_this_iter",
        "timesteps_total",
        "timesteps_this_iter",
        "timesteps_since_restore",
        "__duplicate__",  # RESULT_DUPLICATE: a row Tune drops (every "__" name is refused)
    }
)

# The metrics the built-in trainer reports, and which way is better.
BUILTIN_METRICS: dict[str, str] = {
    "val_acc": "max",
    "val_loss": "min",
    "train_loss": "min",
    "val_rmse": "min",
    "val_mae": "min",
    "val_r2": "max",
    "test_acc": "max",
    "test_loss": "min",
    "test_rmse": "min",
    "test_mae": "min",
    "test_r2": "max",
}


def test_metric(metric: str) -> str | None:
    """The held-out counterpart of a validation metric (``val_acc`` -> ``test_acc``); None
    for a metric that is not a ``val_*`` one."""
    return "test_" + metric[4:] if metric.startswith("val_") and len(metric) > 4 else None


def sign(mode: str) -> float:
    """+1 when larger is better (``max``), -1 for ``min``: ``sign * score`` is larger-better."""
    return 1.0 if mode == "max" else -1.0


def round_seed(seed: int, index: int) -> int:
    """The searcher's seed of round ``index``: ``search.seed + index``, wrapped into the 32 bits
    numpy and Optuna's TPE take (a sweep's seed may be 2**32 - 1)."""
    return (seed + index) % 2**32


def worst(mode: str, metric: str = "") -> float:
    """The worst possible value of ``metric`` in ``mode``: 0 for an accuracy, else ±inf."""
    if metric.endswith("_acc") and mode == "max":
        return 0.0
    return -math.inf if mode == "max" else math.inf


from tuner.records.export import Export, RetestEntry, RetestResult, Stats, TopEntry  # noqa: E402
from tuner.records.fields import Fields  # noqa: E402
from tuner.records.run import RoundRecord, RunMeta, TrialRecord, rank  # noqa: E402

__all__ = [
    "OUTPUT_FILE",
    "TIMEOUT_FILE",
    "TIMEOUT_TRACE_FILE",
    "RUN_FILE",
    "SWEEP_FILE",
    "EXPORT_FILE",
    "RUNGS_FILE",
    "EXPERIMENT_DIR",
    "ROUND_KEY",
    "JOURNAL_FILE",
    "REPORT_DIR",
    "RETEST_SUFFIX",
    "history_path",
    "now",
    "RunStatus",
    "TrialStatus",
    "EPOCH",
    "DIVERGED",
    "EPOCH_S",
    "SAMPLES_PER_S",
    "NODE_ID",
    "DEVICE",
    "THREADS",
    "RESERVED",
    "round_seed",
    "BOOKKEEPING",
    "RAY_KEYS",
    "BUILTIN_METRICS",
    "test_metric",
    "sign",
    "worst",
    "Fields",
    "RoundRecord",
    "RunMeta",
    "TrialRecord",
    "rank",
    "Stats",
    "TopEntry",
    "Export",
    "RetestResult",
    "RetestEntry",
]
