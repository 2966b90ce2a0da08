"""Result batching: a trial sending each epoch's result alone (before) vs in batches (now).

The performance change this measures: a function trainable's ``tune.report`` blocks until
Ray's driver has processed the result and asked for the next, so a trial used to wait for
the driver every epoch (~10 ms on 2 busy cores). Trials now send their results in batches of
up to a second (``tuner.backend._batched_results``: a batch ends early at an ASHA rung, at a
checkpoint and at the trial's end, so ASHA's decisions are as before), and the driver logs
fewer TensorBoard scalars, flushed every 2 s instead of every result
(``tuner.backend._EpochTensorBoard``). "Before" is the same code with
``TUNE_RESULT_BUFFER_LENGTH=1`` (one result a call, Ray's default), which keeps the
TensorBoard change: the difference is the batching alone. Both ways run the same round
through ``tuner.backend.run_round``, alternated A B A B on one Ray instance; the figures are
those of ``checkpoint_cost`` (wall, efficiency, time a trial loses per epoch outside its
epochs, the driver's CPU).

Full size: 2 × 2 rounds of 20 trials × 60 epochs of a BN-MLP [256, 256] on MNIST-1D (3-6 s a
trial here). Quick: 1 × 2 rounds of 4 trials × 3 epochs.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks import common
from benchmarks.checkpoint_cost import plot, summarize, timed_round
from benchmarks.common import Context
from benchmarks.orchestration import sweep as orchestration_sweep

WAYS = {"one result a call (before)": "1", "batched (now)": None}
KEY = "TUNE_RESULT_BUFFER_LENGTH"


def run(ctx: Context) -> dict[str, Any]:
    from tuner.runner import prepare_data
    from tuner.spec import from_dict

    repeats, trials, epochs = (1, 4, 3) if ctx.quick else (2, 20, 60)
    cpus = float(common.ensure_ray().get("CPU", 1))
    sweep = from_dict(orchestration_sweep(trials, epochs))
    data = prepare_data(sweep).without_test()
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    saved = os.environ.pop(KEY, None)
    try:
        for rep in range(repeats):
            for i, (way, length) in enumerate(WAYS.items()):
                if length is not None:
                    os.environ[KEY] = length
                try:
                    runs[way].append(timed_round(ctx, ctx.storage(f"round-{rep}-way-{i}"), sweep, data, cpus,
                                                 f"{way} {rep + 1}"))
                finally:
                    os.environ.pop(KEY, None)
    finally:
        if saved is not None:
            os.environ[KEY] = saved
    summary_rows, ratio = summarize(ctx, runs)
    plot(ctx, runs, "each result alone vs in batches")
    return {"sizes": {"repeats": repeats, "trials": trials, "epochs": epochs}, "cpus": cpus, "runs": runs,
            "summary": summary_rows, "wall_ratio_before_to_now": ratio}
