"""One trial of a sweep's base configuration in this process, without Ray: ``tuner try``.

The loop a user goes through while writing a trial function: the function runs here, its
reports are printed as they come, and its own traceback shows when it fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from tuner import datasets, signals, usercode
from tuner.errors import InputError, RunError, printable
from tuner.failures import describe_exit, describe_interrupt, no_report, user_files, user_frames
from tuner.models import ModelError
from tuner.models.data import Dataset
from tuner.spec import Sweep
from tuner.trial import LocalRun, StopTrial


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


def read_only(data: Dataset) -> Dataset:
    """``data`` with every array a read-only view, as a trial gets it (from Ray's object store):
    a function that changes ``run.data`` in place fails here as it would in a sweep."""

    def view(a: Any) -> Any:
        if not hasattr(a, "view") or not hasattr(a, "flags"):
            return a
        v = a.view()
        v.flags.writeable = False
        return v

    arrays = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
    return dataclasses.replace(data, **{k: view(getattr(data, k)) for k in arrays})


class _Signals:
    """Whether a SIGINT (Ctrl-C) arrived while the function ran: a ``KeyboardInterrupt`` without
    one is the function's own ``raise`` (its failure), with one the user's wish to stop.
    ``watching`` is False where this cannot be told (not the main thread, or SIGINT already
    handled by someone else): every ``KeyboardInterrupt`` then interrupts."""

    def __init__(self) -> None:
        self.watching = False
        self.signalled = False
        self._before: Any = signal.default_int_handler

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.signalled = True
        signals.interrupt(signum, frame)

    @contextlib.contextmanager
    def watch(self) -> Iterator[_Signals]:
        try:
            self._before = signal.getsignal(signal.SIGINT)
            self.watching = threading.current_thread() is threading.main_thread() and self._before in (
                signal.default_int_handler,
                signals.interrupt,
            )
            if self.watching:
                signal.signal(signal.SIGINT, self._on_sigint)
        except (ValueError, OSError):
            self.watching = False
        try:
            yield self
        finally:
            if self.watching:
                signal.signal(signal.SIGINT, self._before)


def _own_failure(sweep: Sweep, message: str, error: BaseException) -> RunError:
    """The function's ``sys.exit()`` or its own ``KeyboardInterrupt`` as its failure: one line,
    and under it the frames of the user's code down to where it happened."""
    frames = user_frames(error, user_files([sweep.trainer, *sweep.code_refs()]))
    return RunError(message, [line.rstrip() for line in traceback.format_list(frames)])


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
        data=read_only(data.without_test()) if data is not None else None,
        trial_id="try",
        max_t=sweep.max_t,
    )
    write(
        printable(
            f"try {sweep.trainer} on {'no data' if data is None else data.name} ({device.type}, {cpus} threads), "
            f"metric {sweep.metric} ({sweep.mode})"
        )
    )
    signals = _Signals()
    try:
        with signals.watch():
            fn(config, run)
    except StopTrial:  # diverged, --epochs reached, or the budget spent
        pass
    except ModelError as e:  # the user's model function broke its contract: the user's error, not tuner's
        raise user_model_failed(sweep, e) from None
    except SystemExit as e:  # the function's sys.exit(): its failure, never this command's exit status
        raise _own_failure(sweep, describe_exit(e, sweep.trainer), e) from None
    except KeyboardInterrupt as e:
        if not signals.watching or signals.signalled:  # Ctrl-C: the user stops tuner try
            raise
        raise _own_failure(sweep, describe_interrupt(e, sweep.trainer), e) from None
    if not run.reports:
        raise RunError(no_report(sweep.trainer))
    last = run.reports[-1]
    value = last.get(sweep.metric)
    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
    write(
        printable(
            f"done: {run.epoch} reports; last {sweep.metric} {shown}" + (" (diverged)" if last.get("diverged") else "")
        )
    )
    return run
