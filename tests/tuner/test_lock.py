"""The driver lock of a run directory, and run directories claimed by one driver at a time."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.errors import InputError, RunError
from tuner.lock import LOCK_FILE, DriverLock, driver_state
from tuner.records import RoundRecord, RunMeta
from tuner.rounds import save_meta, set_aside
from tuner.storage import RunStore

HOLD = "import fcntl, os, socket, sys, time\n" + (
    "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"
    "os.write(fd, f'pid {os.getpid()} on {socket.gethostname()}'.encode())\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def hold(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding ``run_dir``'s lock (a driver running it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_held_by_another_driver_cannot_be_claimed_until_that_driver_is_gone(tmp_path: Path) -> None:
    assert driver_state(tmp_path) == "unknown"  # no lock file: a run of an older tuner
    proc = hold(tmp_path)
    try:
        assert driver_state(tmp_path) == "running"
        with pytest.raises(InputError, match=rf"the run is in progress \(its driver, pid {proc.pid} on "):
            DriverLock.claim(tmp_path)
    finally:
        proc.kill()  # as kill -9: the lock goes with the process
        proc.wait()
    assert driver_state(tmp_path) == "gone"
    lock = DriverLock.claim(tmp_path)
    assert driver_state(tmp_path) == "running"
    assert (tmp_path / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")
    lock.release()
    assert driver_state(tmp_path) == "gone"


def test_a_lock_taken_on_another_machine_is_not_judged_here(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("pid 1 on some-other-host\n")
    assert driver_state(tmp_path) == "unknown"


def _claim(args: tuple[str, str]) -> str:
    storage, name = args
    store, _lock = RunStore.claim(storage, name)
    time.sleep(0.5)  # held while the others try
    return store.local.name


def test_drivers_starting_at_the_same_moment_get_a_run_directory_each(tmp_path: Path) -> None:
    (tmp_path / "runs" / "tiny").mkdir(parents=True)  # an empty folder is free: all race for it
    # spawned, not forked: a fork of this threaded process (Ray's driver) can inherit a lock held
    # by another thread and wait on it forever
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        names = pool.map_async(_claim, [(str(tmp_path / "runs"), "tiny")] * 6).get(timeout=120)
    assert sorted(names) == ["tiny", *(f"tiny-{n}" for n in range(2, 7))]


def test_a_link_at_the_run_directorys_name_is_passed_over_and_a_refused_run_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").symlink_to(tmp_path / "nowhere")  # dangling
    store, lock = RunStore.claim(tmp_path / "runs" / "deep", "tiny")
    assert store.local == tmp_path / "runs" / "deep" / "tiny"
    store.release(lock)  # nothing but the lock written: the folders claim made go
    assert not (tmp_path / "runs" / "deep").exists()
    store, lock = RunStore.claim(tmp_path / "runs", "tiny")
    assert store.local.name == "tiny-2"
    (store.local / "run.json").write_text("{}")
    store.release(lock)  # a run that started keeps its folder
    assert (store.local / "run.json").exists() and driver_state(store.local) == "gone"


def test_an_empty_folder_the_user_made_stays_when_a_refused_run_gives_it_back(tmp_path: Path) -> None:
    (tmp_path / "tiny").mkdir()
    store, lock = RunStore.claim(tmp_path, "tiny")
    store.release(lock)
    assert (tmp_path / "tiny").is_dir() and not any((tmp_path / "tiny").iterdir())


def test_a_run_directory_deleted_or_moved_mid_run_stops_the_run_and_is_not_made_again(tmp_path: Path) -> None:
    store, lock = RunStore.claim(tmp_path, "tiny")
    save_meta(store, RunMeta(name="tiny"))
    store.local.rename(tmp_path / "moved")
    with pytest.raises(RunError, match=r"tiny: the run directory disappeared while the run was going"):
        save_meta(store, RunMeta(name="tiny"))
    assert not store.local.exists()
    store.local.mkdir()  # another folder of that name is not the run's either
    with pytest.raises(RunError, match="disappeared"):
        save_meta(store, RunMeta(name="tiny"))
    assert not any(store.local.iterdir())
    lock.release()


def test_a_resume_that_cannot_restore_sets_the_old_attempt_aside(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    (tmp_path / "trials" / "run_trial_1").mkdir(parents=True)
    (tmp_path / "optuna.journal").write_text("{}\n")
    meta = RunMeta(name="tiny")
    meta.set_round(RoundRecord(index=0, dir="trials", seed=0, num_samples=1, parameters={}))  # the old attempt's
    lines: list[str] = []
    set_aside(store, meta, lines.append)
    assert (tmp_path / "abandoned-1" / "trials" / "run_trial_1").is_dir()
    assert (tmp_path / "abandoned-1" / "optuna.journal").exists()
    assert not (tmp_path / "trials").exists() and meta.rounds == []
    assert len(lines) == 1 and "the run starts over; the old trials are kept in" in lines[0]
    set_aside(store, meta, lines.append)  # nothing left to move: nothing said
    assert len(lines) == 1 and not (tmp_path / "abandoned-2").exists()


def test_an_attempt_interrupted_before_its_first_trial_is_set_aside_as_such(tmp_path: Path) -> None:
    """Ray Tune's files but no trial's folder: the note says so, not that trials were kept."""
    store = RunStore(tmp_path)
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "tuner.pkl").write_bytes(b"")
    (tmp_path / "trials" / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    lines: list[str] = []
    set_aside(store, RunMeta(name="tiny"), lines.append)
    assert (tmp_path / "abandoned-1" / "trials" / "tuner.pkl").exists() and not (tmp_path / "trials").exists()
    assert lines == [
        f"note: the run was interrupted before its first trial: it starts over (what Ray Tune saved is in "
        f"{tmp_path / 'abandoned-1'})"
    ]


def test_a_cloud_run_that_cannot_restore_is_refused_rather_than_mixed(tmp_path: Path) -> None:
    (tmp_path / "trials" / "run_trial_1").mkdir(parents=True)
    with pytest.raises(InputError, match="s3://b/runs/tiny: the experiment's saved state cannot be restored"):
        set_aside(RunStore(tmp_path, "s3://b/runs/tiny"), RunMeta(name="tiny"), print)
