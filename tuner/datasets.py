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


def load(sweep: Sweep, check_metric: bool = True) -> Dataset | None:
    """The sweep's data with its test split (None when the sweep names no data);
    ``check_metric``: the built-in trainer's metric checked against the data's task.

    Raises:
        InputError: the data cannot be loaded or is unusable, or the built-in trainer's
            metric does not fit the data's task (``val_acc`` on regression targets, say).
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
