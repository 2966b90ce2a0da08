"""One trial of a sweep's base configuration in this process, without Ray: ``tuner try``.

The loop a user goes through while writing a trial function: the function runs here, its
reports are printed as they come, and its own traceback shows when it fails.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from tuner import datasets, usercode
from tuner.errors import InputError, RunError
from tuner.models import ModelError
from tuner.spec import Sweep
from tuner.trial import LocalRun, StopTrial, user_files, user_frames


class _Enough(StopTrial):
    """Raised out of a report once ``--epochs`` reports were made."""


class _CappedRun(LocalRun):
    def __init__(self, *, limit: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        super()._send(result, checkpoint)
        if self.limit is not None and self.epoch >= self.limit:
            raise _Enough


def user_model_failed(sweep: Sweep, error: ModelError) -> RunError:
    """The failure of a trial whose user's model function (``model.name``) broke its contract:
    one line naming the sweep file, the key and the rule, and under it the frames of the user's
    own code in the network's error (its traceback, where it has any)."""
    cause = error.__cause__ if error.__cause__ is not None else error
    frames = user_frames(cause, user_files(sweep.code_refs()))
    details = [line.rstrip() for line in traceback.format_list(frames)] if frames else []
    return RunError(f"{sweep.source}: model.name: {error}", details)


def try_trial(sweep: Sweep, epochs: int | None = None, write: Callable[[str], None] = print) -> LocalRun:
    """Run the sweep's function once on its base configuration (nothing searched) in this
    process, printing each report; stop after ``epochs`` reports (the built-in trainer also
    trains for that budget), else at the sweep's budget (``max_t``) as a search trial would.
    The function's exceptions propagate as they are (``tuner try`` prints their traceback);
    ``run.seed`` is the sweep's, ``run.data`` its data without the test split, as in a search.

    Raises:
        InputError: bad ``epochs`` or data.
        RunError: the user's model function (``model.name``) returned no network, or one that
            fails on or does not fit a batch of the data's shape (:class:`tuner.models.ModelError`).
    """
    import torch

    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs: {epochs} must be >= 1")
    usercode.add_to_path(sweep.base_dir)
    config = sweep.base_config()
    if epochs is not None and sweep.builtin:
        config["train"]["epochs"] = epochs
    data = datasets.load(sweep)
    fn = usercode.resolve(sweep.trainer, sweep.base_dir)
    device = torch.device("cuda") if sweep.resources.gpu > 0 and torch.cuda.is_available() else torch.device("cpu")
    cpus = max(1, int(sweep.resources.cpu))
    torch.set_num_threads(cpus)
    run = _CappedRun(
        limit=epochs,
        write=write,
        metric=sweep.metric,
        mode=sweep.mode,
        seed=sweep.seed,
        device=device,
        cpus=cpus,
        data=data.without_test() if data is not None else None,
        trial_id="try",
        max_t=sweep.max_t,
    )
    write(
        f"try {sweep.trainer} on {'no data' if data is None else data.name} ({device.type}, {cpus} threads), "
        f"metric {sweep.metric} ({sweep.mode})"
    )
    try:
        fn(config, run)
    except StopTrial:  # diverged, --epochs reached, or the budget spent
        pass
    except ModelError as e:  # the user's model function broke its contract: the user's error, not tuner's
        raise user_model_failed(sweep, e) from None
    if not run.reports:
        raise RunError(f"{sweep.trainer} returned without a single run.report(...): nothing to optimise")
    last = run.reports[-1]
    value = last.get(sweep.metric)
    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
    write(f"done: {run.epoch} reports; last {sweep.metric} {shown}" + (" (diverged)" if last.get("diverged") else ""))
    return run
