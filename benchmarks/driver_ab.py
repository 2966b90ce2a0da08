"""The driver's own changes, each against itself undone (BENCHMARKS.md k).

The same sleeping trials (``plain_ray.sleep_fit``) through tuner's experiment path
(``driver_scale.ours``), alternated A B A B in one process after a warm-up run, on one Ray
instance of logical CPUs: the driver's CPU a trial and the wall time, with the change and with
it undone. The changes:

- ``tensorboard``: each trial's TensorBoard file written in the driver's thread
  (``tuner.ray.callbacks.TrialEvents``) against tensorboardX's ``SummaryWriter`` (a queue and a
  writer thread a trial);
- ``lookups``: Tune's trainable looked up once a name (``tune_patches.trainable_lookups_cached``)
  against Tune's own lookups, several a trial;
- ``choice``: the next trial to run found among the live trials (``asha.FlatChoice``) and an
  ended trial's progress state taken once (``callbacks.ProgressCallback``), against Ray's pass
  over every trial at every step and every trial's state taken at every progress tick;
- ``fsync``: each trial's TensorBoard file flushed (``callbacks.TrialEvents``) against flushed
  and synced to the disk, as tensorboardX's record writer does at every flush;
- ``placement``: each trial's resources taken from a budget the driver keeps on a local
  instance (``tune_patches.budgeted_resources``) against a placement group a trial;
- ``starting``: a trial whose worker process is starting waits for it
  (``tune_patches.starting_actors_kept``) against Tune's reuse, which kills that process when an
  ended trial's worker is free;
- ``staggered``: on a local instance, no more trial processes starting at once than the
  machine has cores (``tune_patches.staggered_starts``) against all of them at once;
- ``torch``: a worker process imports torch only when the trial's function does
  (``worker.limit_threads``) against every trial importing it first, as before;
- ``tables``: no result table read at the experiment's end (``tune_patches.trial_tables_unread``)
  against Tune reading every trial's ``result.json`` into pandas for a result grid tuner never uses;
- ``syncs``: the staging folder copied to a local run directory whole file by whole file, files
  unchanged since their last copy skipped (``tune_patches.whole_file_syncs``), against Ray's
  copy of every file in place after every snapshot.

Default: 600 half-second trials on 16 logical CPUs, 2 runs of each. Quick: 40 trials of 0.1 s
on 8 CPUs, once. ``TUNER_AB=tensorboard``: one change only; ``TUNER_AB_SIZE=3000:0.2:16:2``:
other sizes (trials, seconds a trial, logical CPUs, runs of each). Run it alone: the first
connection of the process starts Ray with the CPUs it needs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from benchmarks import driver_scale
from benchmarks.common import Context

CHANGES = (
    "tensorboard",
    "lookups",
    "choice",
    "fsync",
    "placement",
    "starting",
    "staggered",
    "torch",
    "tables",
    "syncs",
)


@contextlib.contextmanager
def undone(change: str) -> Iterator[None]:
    """The driver as it was before ``change``."""
    from tuner.ray import asha, callbacks, tune_patches

    if change == "tensorboard":
        with callbacks._without_torch():  # as the driver imports it: torch stays out
            from tensorboardX import SummaryWriter

        swaps: list[tuple[Any, str, Any]] = [(callbacks.EpochTensorBoard, "WRITER", SummaryWriter)]
    elif change == "lookups":
        swaps = [(tune_patches, "trainable_lookups_cached", contextlib.nullcontext)]
    elif change == "choice":
        from ray.tune.schedulers import FIFOScheduler

        swaps = [
            (asha.FlatChoice, "choose_trial_to_run", FIFOScheduler.choose_trial_to_run),
            (callbacks.ProgressCallback, "_emit", _emit_every_trial),
        ]
    elif change == "fsync":
        swaps = [(callbacks.TrialEvents, "flush", _flush_synced), (callbacks.TrialEvents, "close", _close_synced)]
    elif change == "placement":
        swaps = [(tune_patches, "budgeted_resources", contextlib.nullcontext)]
    elif change == "starting":
        swaps = [(tune_patches, "starting_actors_kept", contextlib.nullcontext)]
    elif change == "staggered":
        swaps = [(tune_patches, "staggered_starts", contextlib.nullcontext)]
    elif change == "tables":
        swaps = [(tune_patches, "trial_tables_unread", contextlib.nullcontext)]
    elif change == "syncs":
        swaps = [(tune_patches, "whole_file_syncs", contextlib.nullcontext)]
    elif change == "torch":  # the workers run in other processes: the trials import it themselves
        swaps = [(driver_scale, "IMPORT_TORCH", True)]
    else:
        raise SystemExit(f"TUNER_AB: {change!r} is not one of {', '.join(CHANGES)}")
    saved = [(cls, name, getattr(cls, name)) for cls, name, _ in swaps]
    for cls, name, before in swaps:
        setattr(cls, name, before)
    try:
        yield
    finally:
        for cls, name, now in saved:
            setattr(cls, name, now)


def _flush_synced(self: Any) -> None:
    """A TensorBoard file's flush before ``fsync``: tensorboardX's, which syncs the file too."""
    self._file.flush()
    os.fsync(self._file.fileno())


def _close_synced(self: Any) -> None:
    _flush_synced(self)
    self._file.close()


def _emit_every_trial(self: Any, trials: list[Any], force: bool = False) -> None:
    """The progress callback before ``choice``: every trial's state taken at every tick."""
    import time

    from tuner.progress import TrialEvent

    now = time.monotonic()
    if self.on_step is None or (not force and now - self._last < self.every_s):
        return
    self._last = now
    self.on_step([TrialEvent(t.trial_id, t.status, dict(t.config), dict(t.last_result or {})) for t in trials])


def run(ctx: Context) -> dict[str, Any]:
    from tuner.ray import cluster

    trials, seconds, cpus, repeats = (40, 0.1, 8, 1) if ctx.quick else (600, 0.5, 16, 2)
    custom = os.environ.get("TUNER_AB_SIZE")
    if custom and not ctx.quick:
        try:
            n, sec, c, r = custom.split(":")
            trials, seconds, cpus, repeats = int(n), float(sec), int(c), int(r)
        except ValueError:
            raise SystemExit(
                f"TUNER_AB_SIZE: {custom[:60]!r} must be TRIALS:SECONDS:CPUS:RUNS, e.g. 3000:0.2:16:2"
            ) from None
    changes = [c for c in os.environ.get("TUNER_AB", ",".join(CHANGES)).split(",") if c]
    for change in changes:
        with undone(change):  # an unknown name stops here, before Ray starts
            pass
    cpus = int(cluster.connect(num_cpus=cpus).get("CPU", cpus))
    driver_scale.ours(ctx, max(20, trials // 10), seconds, cpus, "warm-up")  # imports, Ray's first workers
    out: dict[str, Any] = {"sizes": {"trials": trials, "seconds": seconds, "cpus": cpus, "repeats": repeats}}
    for change in changes:
        rows: dict[str, list[dict[str, Any]]] = {"now": [], "undone": []}
        for rep in range(repeats):
            for way in rows:
                with undone(change) if way == "undone" else contextlib.nullcontext():
                    row = driver_scale.ours(ctx, trials, seconds, cpus, f"{change}-{way}-{rep}")
                rows[way].append(row)
                ctx.say(
                    f"{change} {way:<7} {trials} trials of {seconds:g}s on {cpus} CPUs: wall {row['wall_s']:.1f}s, "
                    f"driver CPU {row['driver_cpu_per_trial_ms']:.1f} ms a trial" + driver_scale._workers_said(row)
                )
        mean = {way: sum(r["driver_cpu_per_trial_ms"] for r in rs) / len(rs) for way, rs in rows.items()}
        wall = {way: sum(r["wall_s"] for r in rs) / len(rs) for way, rs in rows.items()}
        change_ratio = mean["now"] / mean["undone"]
        ctx.say(
            f"{change}: driver CPU a trial {mean['now']:.1f} ms against {mean['undone']:.1f} ms undone "
            f"({change_ratio:.2f}); wall {wall['now']:.1f} s against {wall['undone']:.1f} s "
            f"({wall['now'] / wall['undone']:.2f})"
        )
        out[change] = {"rows": rows, "driver_cpu_ms": mean, "ratio": change_ratio, "wall_s": wall}
    return out
