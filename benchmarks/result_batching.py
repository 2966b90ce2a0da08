"""Result batching: a trial sending each epoch's result alone (before) vs in batches (now).

The performance change this measures: a function trainable's ``tune.report`` blocks until
Ray's driver has processed the result and asked for the next, so a trial used to wait for
the driver every epoch (~10 ms on 2 busy cores). Trials now send their results in batches of
up to a second (``tuner.ray.batching.batched``: a batch ends early at an ASHA rung, at a
checkpoint and at the trial's end, so ASHA's decisions are as before), and the driver logs
fewer TensorBoard scalars, flushed every 2 s instead of every result
(``tuner.ray.callbacks.EpochTensorBoard``). "Before" is the same code with
``TUNE_RESULT_BUFFER_LENGTH=1`` (one result a call, Ray's default), which keeps the
TensorBoard change: the difference is the batching alone. Both ways run the same round
through ``tuner.ray.experiment.run_experiment``, alternated A B A B on one Ray instance; the figures are
those of ``checkpoint_cost`` (wall, efficiency, time a trial loses per epoch outside its
epochs, the driver's CPU).

Full size: 2 × 2 rounds of 20 trials × 60 epochs of a BN-MLP [256, 256] on MNIST-1D (3-6 s a
trial here). Quick: 1 × 2 rounds of 4 trials × 3 epochs.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

from benchmarks.checkpoint_cost import compare
from benchmarks.common import Context

WAYS = {"one result a call (before)": "1", "batched (now)": None}
KEY = "TUNE_RESULT_BUFFER_LENGTH"


@contextlib.contextmanager
def _buffer_length(length: str | None) -> Iterator[dict[str, Any]]:
    """``TUNE_RESULT_BUFFER_LENGTH`` set to ``length`` (None: unset, tuner's batching) for one
    round, then as it was."""
    saved = os.environ.pop(KEY, None)
    if length is not None:
        os.environ[KEY] = length
    try:
        yield {}
    finally:
        os.environ.pop(KEY, None)
        if saved is not None:
            os.environ[KEY] = saved


def run(ctx: Context) -> dict[str, Any]:
    ways = {way: functools.partial(_buffer_length, length) for way, length in WAYS.items()}
    return compare(ctx, ways, "each result alone vs in batches")
