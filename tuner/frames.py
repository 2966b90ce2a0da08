"""A run's trials as pandas DataFrames, for notebooks (``tuner.load_run``)."""

from __future__ import annotations

import os
from typing import Any

from tuner.errors import InputError
from tuner.results import load_run


def trials_frame(run_dir: str | os.PathLike[str], per: str = "trial") -> Any:
    """``per="trial"``: one row per trial -- ``trial_id``, ``round``, ``status``, ``epochs``,
    ``score`` (the sweep's metric, last reported), ``node_id``, each searched value under its
    dotted path and the last value of every metric -- best first. ``per="epoch"``: one row per
    reported epoch with ``trial_id``, ``round``, the searched values and that epoch's report.

    Raises:
        InputError: not a run directory, or ``per`` is neither.
    """
    import pandas as pd

    if per not in ("trial", "epoch"):
        raise InputError(f"per: {per!r} is not one of trial, epoch")
    run = load_run(run_dir)
    order = {t.trial_id: i for i, t in enumerate(run.ranked())}
    rows: list[dict[str, Any]] = []
    for t in sorted(run.trials, key=lambda t: (order.get(t.trial_id, len(order)), t.round, t.trial_id)):
        head = {"trial_id": t.trial_id, "round": t.round, "status": t.status.value}
        if per == "trial":
            last = t.history[-1] if t.history else {}
            rows.append(
                {
                    **head,
                    "epochs": t.epochs,
                    "score": t.score(run.metric),
                    "node_id": t.node_id,
                    **t.params,
                    **{m: last.get(m) for m in t.metrics()},
                }
            )
        else:
            rows.extend({**head, **t.params, **h} for h in t.history)
    frame = pd.DataFrame(rows)
    frame.attrs.update(metric=run.metric, mode=run.mode, run_dir=str(run.path))
    return frame
