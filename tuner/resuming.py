"""Resuming a run: ``tuner resume RUN_DIR`` (and :func:`tuner.resume`).

    summary = resume_sweep("runs/quickstart")

An interrupted run (Ctrl-C, SIGTERM, a killed driver, a failure) goes on from Ray Tune's saved
state: rounds already done are kept, the round that was running continues, later rounds run as
usual, then the export. One driver at a time (:mod:`tuner.lock`): a resume of a run another
driver holds is refused before anything starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tuner import datasets, rounds
from tuner.errors import InputError
from tuner.lock import DriverLock
from tuner.models.data import Dataset
from tuner.outputs import check_output
from tuner.records import EXPERIMENT_DIR, RUN_FILE, SWEEP_FILE, RunMeta, RunStatus, now
from tuner.results import RunDir, load_run
from tuner.runner import finish, run_guarded, write_notes
from tuner.spec import Sweep, from_dict
from tuner.startup import preload, prepare, starting_line
from tuner.storage import RunStore
from tuner.summary import RunSummary

RESUME_WARNING = (
    "a run directory holds pickled state (Ray Tune's tuner.pkl and experiment snapshots) that "
    "resuming unpickles: resume only runs from a trusted source"
)


def resume_sweep(
    run_dir: str | Path,
    address: str | None = None,
    write: Callable[[str], None] = print,
    num_cpus: int | None = None,
    progress_every_s: float = 5.0,
) -> RunSummary:
    """Finish an interrupted run (Ctrl-C, a killed driver, a failure): rounds already done
    are kept; the round that was running goes on from its saved state (finished trials are
    not re-run, unfinished ones continue from their last checkpoints, the searcher and
    ASHA's rung records are restored); later rounds run as usual. The data is loaded again
    from the run's ``sweep.yaml`` and must be the same (its fingerprint is checked).

    The run directory holds pickled state that resuming unpickles: resume only runs from a
    trusted source.

    Raises:
        InputError: not a run directory, already done, other data, or no node fits.
        RunError: the run itself failed.
    """
    from tuner.ray.joining import resolve

    started = time.monotonic()
    asked = address
    address = resolve(address, num_cpus)
    store = RunStore.open(run_dir)
    try:
        run = load_run(store.local)
        meta = run.meta
        if meta.status == RunStatus.DONE:
            raise InputError(f"{run_dir}: the run is done already; nothing to resume")
        check_output(store.local / RUN_FILE, "RUN_DIR")  # a read-only run cannot be resumed: said before Ray starts
        DriverLock.check_free(store.local)  # another driver runs or resumes it: refused before anything starts
        store.check_writes()  # read-only credentials: refused before anything is written
        return _resume(store, run, address, asked, num_cpus, write, progress_every_s, started)
    except BaseException as e:  # what the run directory is, for --json
        e.tuner_run_dir = store.location  # type: ignore[attr-defined]
        raise


def _resume(
    store: RunStore,
    run: RunDir,
    address: str | None,
    asked: str | None,
    num_cpus: int | None,
    write: Callable[[str], None],
    progress_every_s: float,
    started: float,
) -> RunSummary:
    meta = run.meta
    raw = run.sweep.to_dict()
    base_dir = Path(meta.provenance["sweep_file"]).parent if meta.provenance.get("sweep_file") else None
    sweep = from_dict(raw, source=str(store.local / SWEEP_FILE), base_dir=base_dir)
    preload()
    write(starting_line(address, kept=asked is None, num_cpus=num_cpus))
    data, resources, note = prepare(sweep, address, num_cpus)
    saved = (meta.provenance.get("data") or {}).get("sha256")
    current = (datasets.fingerprint(data) or {}).get("sha256")
    if saved and saved != current:
        raise InputError(
            f"{store.local / SWEEP_FILE}: data: the data set differs from the one this run started "
            f"with (sha256 {str(current)[:12]} vs {saved[:12]})"
        )
    lock = DriverLock.claim(store.local)  # this driver's from here (of two resumes at once, one goes on)
    try:
        store.remember()
        return _continue(store, meta, sweep, data, resources, address, note, write, progress_every_s, started)
    finally:
        lock.release()


def _continue(
    store: RunStore,
    meta: RunMeta,
    sweep: Sweep,
    data: Dataset | None,
    resources: dict[str, float],
    address: str | None,
    note: str | None,
    write: Callable[[str], None],
    progress_every_s: float,
    started: float,
) -> RunSummary:
    """The rounds of a resumed run, from where its saved state left them, then the export."""
    from tuner.ray import experiment

    restore = experiment.can_resume(store.tune_storage, EXPERIMENT_DIR)
    if not restore:
        rounds.set_aside(store, meta, write)
    current = next((r.index for r in meta.rounds if r.status != "done"), len(meta.rounds))
    meta.status = RunStatus.RUNNING
    meta.resumed.append(now())
    meta.location = meta.location or store.location
    where = f"round {min(current, sweep.search.rounds() - 1) + 1}/{sweep.search.rounds()}" if restore else "the start"
    write(
        f"resuming {meta.name or sweep.name} at {where} on "
        f"{resources.get('CPU', 0):g} CPUs / {resources.get('GPU', 0):g} GPUs"
    )
    write(f"run directory: {store.location}")
    write(f"note: {RESUME_WARNING}")
    write_notes(store, address, note, write)
    rounds.save_meta(store, meta)

    def body() -> None:
        rounds.run_rounds(
            sweep, meta, data, write=write, progress_every_s=progress_every_s, store=store, restore=restore
        )

    run_guarded(body, store, meta, write)
    return finish(store, meta, started)
