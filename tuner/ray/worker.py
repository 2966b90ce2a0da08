"""The worker side: a trial as Ray Tune runs it, and plain tasks.

:func:`run_trial` is the plain function trainable every trial runs: it builds the trial's
configuration, makes a :class:`RayRun` and calls the sweep's function with it (the built-in
BN trainer or the user's). :func:`run_tasks` runs plain Ray tasks (a retest's seeds).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

if TYPE_CHECKING:
    import torch
from ray import tune

from tuner import watchdog
from tuner.failures import describe_error, describe_exit, describe_interrupt, no_report
from tuner.records import OUTPUT_FILE, ROUND_KEY
from tuner.space import apply_params
from tuner.trial import Run, StopTrial, TaskRun, TrialError, saved_state

CHECKPOINT_FILE = "state.pt"

# What Ray Tune sets in every trial's process through a runtime environment (PyTorch Lightning
# must not fork there: ray-project/ray#28197). tuner's trial processes start without one
# (tuner.ray.tune_patches.plain_trial_processes) and set it here, as the trial's module loads.
os.environ.setdefault("PL_DISABLE_FORK", "1")


def trial_device() -> torch.device | None:
    """The GPU Ray assigned this trial (Ray sets CUDA_VISIBLE_DEVICES to it, so it is
    ``cuda`` inside the process), or None for the CPU when Ray gave it none: torch is not
    imported for that (:attr:`tuner.trial.Run.device` names the CPU when first asked)."""
    if not ray.get_gpu_ids():
        return None
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else None


def limit_threads(threads: int) -> None:
    """Give torch the trial's CPUs as its threads (trials share a node), without importing it.

    Set on torch now if this process has imported it (the function's module did, or an
    earlier trial of a reused worker), and in ``OMP_NUM_THREADS``, which torch reads when it
    is first imported. A function that never uses torch (a sleeping benchmark trial, a
    scikit-learn model) never pays its import: ~2 s of CPU a worker process.
    """
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def node_id() -> str:
    """Ray's id of the node this runs on (nodes of one machine share an IP, not an id)."""
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (a direct call in a test)
        return ""


def on_node(text: str) -> str:
    """``text`` naming the node it happened on (a trial's error: nodes differ in what they hold)."""
    return f"{text} (on node {node_id() or '?'})"


def without_node(line: str) -> str:
    """A line :func:`on_node` wrote, without the node: the same error on any node."""
    return _ON_NODE.sub("", line)


_ON_NODE = re.compile(r" \(on node [^)]*\)$")


def trial_cpus() -> int:
    """The CPUs Ray reserved for this trial (at least 1)."""
    try:
        resources = tune.get_context().get_trial_resources().required_resources
        return max(1, int(resources.get("CPU", 1)))
    except Exception:  # outside a Tune session (a direct call in a test)
        return 1


def load_function(ref: str) -> Callable[..., Any]:
    """Import the trial function ``"package.module:function"`` on this worker (the user's
    module arrives with the job's runtime environment, see :mod:`tuner.usercode`)."""
    from tuner import usercode

    return usercode.resolve(ref)


class RayRun(Run):
    """:class:`tuner.Run` inside a Ray Tune trial: reports go through ``tune.report``, a due
    checkpoint is a ``torch.save`` of ``{"epoch", "state"}`` in Tune's checkpoint folder."""

    def _send(self, result: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        if checkpoint is None:
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="tuner-ckpt-") as d:
            Path(d, CHECKPOINT_FILE).write_bytes(saved_state(checkpoint))  # ReportError: it cannot be pickled
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(d))

    def _checkpoint(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as d:
            return load_checkpoint(Path(d) / CHECKPOINT_FILE)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The state a trial saved (``None`` if it is not a dict), every tensor on the CPU.

    On the CPU, whatever device saved it: a trial restored on another node may have another
    device (a GPU's checkpoint on a CPU-only node), a ``torch.Generator``'s state must be a CPU
    tensor, and ``load_state_dict`` of a module or optimizer moves each tensor to the device of
    the parameter it belongs to. The file is the trial's own (resume is for trusted runs).
    """
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved if isinstance(saved, dict) else None


def run_trial(
    config: dict[str, Any],
    *,
    function: str,
    base: dict[str, Any],
    data: Any,
    metric: str,
    mode: str,
    seed: int,
    checkpoint_every_s: float | None = None,
    max_t: int | None = None,
    trial_timeout: float | None = None,
) -> None:
    """Ray Tune's trainable: ``function(base with config applied, run)``.

    Args:
        config: the searched parameters, keyed by dotted path (``{"train.lr": 0.03}``).
        function: the trial function, ``"package.module:function"``.
        base: the sweep's config before the searched values.
        data: the data set without its test split (shipped once through Ray's object store).
        metric, mode: the sweep's metric and which way is better.
        seed: ``run.seed``.
        checkpoint_every_s: a fixed interval between checkpoints (0: every epoch) instead of
            :class:`tuner.trial.CheckpointPolicy`'s ratio to their cost.
        max_t: the trial's budget in reports (None: until the function returns).
        trial_timeout: seconds the function may go without a report before its process is
            ended (:func:`tuner.watchdog.reports_watched`); None: no limit.

    The function's own exception fails the trial as a :class:`tuner.trial.TrialError` whose
    message is one line naming the user's frame (what the run's summary shows); the original
    error and its traceback are chained to it, in the trial's ``error.txt``. So does its
    ``sys.exit()`` (which would otherwise end the worker), and its return without a single
    report (Tune would have no result to rank it by).
    """
    threads = trial_cpus()
    limit_threads(threads)
    run = RayRun(
        metric=metric,
        mode=mode,
        seed=seed,
        device=trial_device(),
        cpus=threads,
        data=data,
        trial_id=tune.get_context().get_trial_id() or "",
        node_id=node_id(),
        checkpoint_every_s=checkpoint_every_s,
        max_t=max_t,
    )
    run._load()  # a restored trial's epochs count on from its checkpoint
    try:
        fn = load_function(function)
    except ImportError as e:  # the module did not reach this worker, or fails to import here
        raise TrialError(on_node(f"{function}: {e}")) from None
    try:
        searched = {
            k: v for k, v in config.items() if k != ROUND_KEY
        }  # the round is the searcher's, not the function's
        folder = _trial_dir()
        with output_kept(folder), threads_noted(), watchdog.reports_watched(run, trial_timeout, folder):
            fn(apply_params(base, searched), run)
    except StopTrial:
        return
    except SystemExit as e:  # the user's sys.exit(): the trial's failure, not the worker's end
        raise TrialError(describe_exit(e, function)) from e
    except KeyboardInterrupt as e:
        if threading.current_thread() is threading.main_thread():  # Ray's cancellation of the task
            raise
        raise TrialError(describe_interrupt(e, function)) from e  # signals reach the main thread only
    except Exception as e:
        raise TrialError(describe_error(e)) from e
    if run.epoch == 0:  # not a report ever, here or before a restore: Tune has nothing to rank it by
        raise TrialError(no_report(function))


@contextlib.contextmanager
def threads_noted() -> Iterator[None]:
    """Say on ``sys.stderr`` (the trial's ``output.txt`` in :func:`output_kept`) when the block
    leaves threads running that it started and that are not daemons: they keep the trial's
    process alive after it (until tuner's own Ray instance stops, which kills it)."""
    before = set(threading.enumerate())
    try:
        yield
    finally:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        if left:
            names = ", ".join(t.name for t in left[:5]) + (", ..." if len(left) > 5 else "")
            print(
                f"tuner: the trial function returned with {len(left)} thread{'s' if len(left) > 1 else ''} "
                f"still running ({names}): they keep this trial's process alive after it; join them before "
                "returning, or start them with daemon=True",
                file=sys.stderr,
                flush=True,
            )


def _trial_dir() -> Path | None:
    """The trial's folder, where its output and a timeout's reason are written: the one Ray
    gives a trial that starts a worker (its staging folder, which Ray copies to the run
    directory). A worker that Ray reuses for the next trial (``reuse_actors``) is told a
    working folder instead, which Ray never copies: that trial's ``timed-out.txt`` and
    ``output.txt`` were lost, and it failed with Ray's "the actor died"."""
    try:
        from ray.train._internal.session import get_session

        storage = getattr(get_session(), "storage", None)
        staged = storage.trial_driver_staging_path if storage is not None else None
    except Exception:  # outside a Tune session, or a Ray that keeps it elsewhere
        staged = None
    if staged:
        return Path(staged)
    get = getattr(tune.get_context(), "get_trial_dir", None)
    try:
        folder = get() if get is not None else None
    except Exception:  # outside a Tune session: no folder of its own
        return None
    return Path(folder) if folder else None


@contextlib.contextmanager
def output_kept(folder: Path | None) -> Iterator[None]:
    """What the trial function prints (Python's ``sys.stdout`` and ``sys.stderr``: ``print``,
    tqdm, warnings) appended to :data:`OUTPUT_FILE` in the trial's ``folder`` while it runs: a
    user debugging with ``print`` finds it beside the trial's results (Ray's own logs keep their
    streams). Without a folder, or where the file cannot be opened, the streams stay as they are."""
    try:
        out = open(folder / OUTPUT_FILE, "a", encoding="utf-8", errors="replace", buffering=1) if folder else None
    except OSError:
        out = None
    if out is None:
        yield
        return
    with out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield


def task(fn: Callable[..., Any], call: dict[str, Any], cpus: float, **shared: Any) -> Any:
    """A plain Ray task (see :func:`run_tasks`): ``fn(**call, **shared, device=..., cpus=...)``
    on the CPUs and the GPU Ray gave it."""
    threads = max(1, int(cpus))
    limit_threads(threads)
    return fn(**call, **shared, device=trial_device(), cpus=threads)


def run_tasks(
    fn: Callable[..., Any],
    calls: Sequence[dict[str, Any]],
    shared: dict[str, Any],
    cpu: float,
    gpu: float,
    on_result: Callable[[int, Any], None] | None = None,
    max_retries: int = 2,
) -> list[Any]:
    """Run ``fn(**call, **shared, device=..., cpus=...)`` for every call as Ray tasks, all in
    parallel on the cluster; ``shared`` values go through the object store once. Results come
    back in the order of ``calls``; ``on_result(index, result)`` is told of each as it
    finishes. A task whose worker dies is retried ``max_retries`` times."""
    refs = {k: ray.put(v) for k, v in shared.items()}
    remote = ray.remote(task).options(num_cpus=cpu, num_gpus=gpu, max_retries=max_retries)
    pending = {remote.remote(fn, call, cpu, **refs): i for i, call in enumerate(calls)}
    results: list[Any] = [None] * len(calls)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        results[index] = ray.get(ready[0])
        if on_result is not None:
            on_result(index, results[index])
    return results


def seed_task(
    *,
    function: str,
    config: dict[str, Any],
    seed: int,
    metric: str,
    mode: str,
    data: Any,
    device: torch.device | None,
    cpus: int,
    max_t: int | None = None,
) -> dict[str, Any]:
    """One retest seed as a task: run the trial function to its end (at most ``max_t``
    reports) with ``seed``; returns its last report (``diverged`` set when it diverged), every
    ``test_*`` metric it reported at any epoch, and its seconds; or its error."""

    run = TaskRun(
        metric=metric,
        mode=mode,
        seed=seed,
        device=device,
        cpus=cpus,
        data=data,
        trial_id=f"seed-{seed}",
        node_id=node_id(),
        max_t=max_t,
    )
    start = time.perf_counter()
    try:
        load_function(function)(config, run)
    except StopTrial:
        pass
    except SystemExit as e:  # the user's sys.exit(): this seed's failure, not the worker's end
        return {"seed": seed, "error": describe_exit(e, function), "seconds": time.perf_counter() - start}
    except Exception as e:
        return {"seed": seed, "error": describe_error(e), "seconds": time.perf_counter() - start}
    if not run.reports:
        return {"seed": seed, "error": no_report(function), "seconds": time.perf_counter() - start}
    last = dict(run.reports[-1])
    # test metrics may come with the last report only; keep every test_* reported at any epoch
    for report in run.reports:
        last.update({k: v for k, v in report.items() if k.startswith("test_") and k not in last})
    return {
        "seed": seed,
        "metrics": last,
        "diverged": bool(last.get("diverged")),
        "epochs": run.epoch,
        "seconds": time.perf_counter() - start,
    }
