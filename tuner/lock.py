"""Locks: the run directory's driver lock (one driver at a time runs or resumes a run), and a
file's lock around reading, changing and rewriting it (:func:`locked`).

    lock = DriverLock.claim(run_dir)      # InputError if another driver holds it
    ...                                   # the run
    lock.release()                        # or the process ends: the OS releases it

``run_dir/.driver.lock`` names the driver (``pid host``) and is held with ``flock`` while the
driver lives: a driver killed with ``kill -9`` releases it with its process, so a lock never
goes stale, and ``tuner report --watch`` and ``tuner export`` can tell a run that is going
from one whose driver died (:func:`driver_state`). The lock file is claimed with
``O_EXCL`` when a run directory is created, so two ``tuner run`` started at the same moment
never share a folder. A lock on a shared mount is seen across machines where the mount
supports ``flock`` (NFSv4 does); :func:`driver_state` trusts a lock only on the machine that
took it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuner.errors import InputError

LOCK_FILE = ".driver.lock"

DriverState = Literal["running", "gone", "unknown"]


@dataclass
class DriverLock:
    """A held lock on one run directory (its file descriptor)."""

    path: Path
    fd: int

    @classmethod
    def claim(cls, run_dir: Path, create: bool = False) -> DriverLock:
        """Hold ``run_dir``'s lock. ``create``: the lock file must not exist yet (a new run
        directory being claimed: FileExistsError when another driver claimed it first).

        Raises:
            InputError: another driver holds the lock (it is running or resuming the run).
            FileExistsError: ``create`` and the lock file exists.
        """
        path = run_dir / LOCK_FILE
        flags = os.O_RDWR | os.O_CREAT | (os.O_EXCL if create else 0)
        try:
            fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:  # a new run directory another driver claimed first
            raise
        except OSError as e:  # a read-only run directory, a link planted as the lock file...
            raise InputError(f"{run_dir}: cannot take the run's lock {LOCK_FILE} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read(fd)
            os.close(fd)
            raise InputError(_held(run_dir, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        return cls(path, fd)

    @staticmethod
    def check_free(run_dir: Path) -> None:
        """Refuse a run another driver holds, writing nothing (:meth:`claim` later takes it).

        Raises:
            InputError: as :meth:`claim`.
        """
        probed = _probe(run_dir)
        if probed is not None and probed[0]:
            raise InputError(_held(run_dir, probed[1]))

    def release(self) -> None:
        """Let go of the lock (the file stays: it names the last driver)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def driver_state(run_dir: Path) -> DriverState:
    """Whether a driver holds ``run_dir``'s lock: ``running``, ``gone`` (no process holds it:
    the driver ended or was killed) or ``unknown`` (no lock file: a run of an older tuner, or
    one taken on another machine, whose lock this one cannot see)."""
    probed = _probe(run_dir)
    if probed is None or not probed[1].endswith(f" on {socket.gethostname()}"):
        return "unknown"
    return "running" if probed[0] else "gone"


def _probe(run_dir: Path) -> tuple[bool, str] | None:
    """Whether some process holds ``run_dir``'s lock, and who the file names; None without a
    lock file (or one this process cannot read). Writes nothing."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        holder = _read(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True, holder
        return False, holder
    finally:
        os.close(fd)


def _held(run_dir: Path, holder: str) -> str:
    return (
        f"{run_dir}: the run is in progress (its driver, {holder or 'another process'}, holds {LOCK_FILE}): "
        "wait for it to end, or stop it first (Ctrl-C) and then resume"
    )


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of ``path`` (:func:`locked`): named by a hash of its absolute path, under
    ``$TUNER_CACHE/locks`` (nothing is left beside the user's files)."""
    import hashlib

    from tuner.models.sources import cache_dir

    key = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:32]
    return cache_dir() / "locks" / f"{key}.lock"


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` while the block runs: ``flock`` on its lock file
    (:func:`lock_path`; the file itself is replaced by each atomic write). Every process of this
    machine that reads, changes and rewrites ``path`` takes it around the three, so none loses
    another's change; without a lock file (a read-only cache) the block runs unlocked. Not
    re-entrant for one path."""
    fd = -1
    try:
        lock = lock_path(path)
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        pass
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock
