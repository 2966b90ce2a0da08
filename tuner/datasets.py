"""The sweep's data set: loaded once, in the driver, checked against what the sweep trains.

Trials never read the data source: the driver loads it here and every trial gets it through
Ray's object store (``run.data``). A data problem is bad input, named and reported before
anything is started or written.
"""

from __future__ import annotations

from typing import Any

from tuner import usercode
from tuner.errors import InputError
from tuner.models.data import DataError, Dataset
from tuner.models.data import load as load_source
from tuner.spec import Sweep
from tuner.spec.validate import CLASSIFICATION_METRICS, REGRESSION_METRICS

# The fewest training samples the built-in trainer trains on: batch norm cannot normalise a
# batch of one sample, which is skipped, so one sample would train no batch at all.
MIN_TRAIN_SAMPLES = 2


def load(sweep: Sweep, trains_on_split: bool = True, check_metric: bool = True) -> Dataset | None:
    """The sweep's data with its test split (None when the sweep names no data).

    ``trains_on_split``: the built-in trainer trains on the training split (a sweep's trials,
    ``try``, ``retest``), which must hold :data:`MIN_TRAIN_SAMPLES`; False where it trains on
    train + val (``tuner train``) or does not train (``tuner evaluate``). ``check_metric``: the
    built-in trainer's metric checked against the data's task (:func:`fits`).

    Raises:
        InputError: the data cannot be loaded or is unusable, the built-in trainer's metric
            does not fit the data's task (``val_acc`` on regression targets, say), or its
            training split is too small to train a batch.
    """
    if sweep.data is None:
        return None
    task = sweep.train.get("task") if sweep.builtin else None
    try:
        data = load_source(sweep.data, task=task, resolve=lambda ref: usercode.resolve(ref, sweep.base_dir))
    except DataError as e:
        raise InputError(f"{sweep.source}: data: {e}") from None
    except MemoryError:
        raise InputError(f"{sweep.source}: data: too large to load into memory") from None
    if check_metric:
        fits(sweep, data)
    if sweep.builtin and trains_on_split:
        n = len(data.x_train)
        if n < MIN_TRAIN_SAMPLES:
            raise InputError(
                f"{sweep.source}: data: the training split holds {n} sample{'s' if n != 1 else ''} ({len(data.x_val)} "
                f"went to validation): the built-in trainer needs at least {MIN_TRAIN_SAMPLES} "
                "(batch norm cannot normalise a batch of one); lower val_fraction or add samples"
            )
    return data


def fits(sweep: Sweep, data: Dataset) -> None:
    """Refuse a built-in trainer's metric that it does not report on ``data``'s task.

    Raises:
        InputError: one line naming the metric, the data's task and the metrics it has.
    """
    if sweep.builtin:
        known = CLASSIFICATION_METRICS if data.task == "classification" else REGRESSION_METRICS
        if sweep.metric not in known:
            raise InputError(
                f"{sweep.source}: metric: {sweep.metric!r} is not reported by the built-in trainer on "
                f"{data.task} data ({data.name}): one of {', '.join(known)}"
            )


def fingerprint(data: Dataset | None) -> dict[str, Any] | None:
    """The data's fingerprint (None without data)."""
    return None if data is None else data.fingerprint()
