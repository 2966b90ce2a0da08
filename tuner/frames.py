"""A run's trials as pandas DataFrames, for notebooks (``tuner.load_run``)::

    trials = tuner.load_run("runs/quickstart")                  # one row per trial, best first
    trials.groupby("model.hidden")["score"].max()
    epochs = tuner.load_run("runs/quickstart", per="epoch")     # one row per reported epoch
    epochs.pivot(index="epoch", columns="trial_id", values="val_acc").plot(legend=False)

A searched value that is a list (widths such as ``[64, 64]``) is a tuple in a frame, so that its
column can be grouped and compared. A searched value or a metric named as one of tuner's own
columns (a function that reports ``score`` or ``error``) is under ``param.NAME`` or ``metric.NAME``.
"""

from __future__ import annotations

import os
from typing import Any

from tuner.errors import InputError
from tuner.records import BOOKKEEPING
from tuner.results import load_run

TRIAL_COLUMNS = ("trial_id", "round", "status", "epochs", "score", "node_id", "error")
EPOCH_COLUMNS = ("trial_id", "round", "status", "epoch")


def _cell(value: Any) -> Any:
    """A value as a frame holds it: lists (and lists in lists) as tuples, which hash."""
    return tuple(_cell(v) for v in value) if isinstance(value, list) else value


def trials_frame(run_dir: str | os.PathLike[str] | Any, per: str = "trial") -> Any:
    """``per="trial"``: one row per trial -- ``trial_id``, ``round``, ``status`` (finished,
    stopped, diverged, error, running), ``epochs``, ``score`` (the sweep's metric, last
    reported), ``node_id``, ``error`` (a failed trial's message), each searched value under
    its dotted path and the last value of every metric -- best first. ``per="epoch"``: one row
    per reported epoch with ``trial_id``, ``round``, ``status``, the searched values and that
    epoch's report. ``frame.attrs`` holds the sweep's ``metric`` and ``mode`` and the
    ``run_dir``. ``run_dir`` may also be what :func:`tuner.run` returned.

    Raises:
        InputError: not a run directory, or ``per`` is neither.
    """
    import pandas as pd

    if per not in ("trial", "epoch"):
        raise InputError(f"per: {str(per)[:40]!r} is not one of trial, epoch")
    run = load_run(getattr(run_dir, "run_dir", run_dir))  # a RunSummary names its directory
    order = {t.trial_id: i for i, t in enumerate(run.ranked())}
    rows: list[dict[str, Any]] = []
    for t in sorted(run.trials, key=lambda t: (order.get(t.trial_id, len(order)), t.round, t.trial_id)):
        head = {"trial_id": t.trial_id, "round": t.round, "status": t.status.value}
        params = {k: _cell(v) for k, v in t.params.items()}
        if per == "trial":
            last = t.history[-1] if t.history else {}
            own = {**head, "epochs": t.epochs, "score": t.score(run.metric), "node_id": t.node_id, "error": t.error}
            rows.append(_row(own, params, {m: last.get(m) for m in t.metrics()}))
        else:
            for h in t.history:
                kept = {k: v for k, v in h.items() if k in BOOKKEEPING}
                rows.append(_row({**head, **kept}, params, {k: v for k, v in h.items() if k not in kept}))
    frame = pd.DataFrame(rows, columns=None if rows else list(TRIAL_COLUMNS if per == "trial" else EPOCH_COLUMNS))
    frame.attrs.update(metric=run.metric, mode=run.mode, run_dir=str(run.path))
    return frame


def _row(own: dict[str, Any], params: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """tuner's columns ``own``, then the searched values, then the metrics; a value whose name
    is taken already (a function's metric ``score`` or ``error``, a config key ``round``) is
    put under ``param.NAME`` or ``metric.NAME``: tuner's columns keep their meaning."""
    row = dict(own)
    for prefix, values in (("param", params), ("metric", metrics)):
        for key, value in values.items():
            row[f"{prefix}.{key}" if key in row else key] = value
    return row
