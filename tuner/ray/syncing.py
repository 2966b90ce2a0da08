"""The driver's copy of its staging folder to a run directory on a local disk, whole files only.

Ray Tune writes an experiment's state, and each trial's ``result.json`` and ``params.json``,
into a staging folder of the driver's, and copies that folder to the run directory after
every snapshot (every 0.5 s or more), in a background thread. Ray copies with pyarrow, which
opens each file it replaces with truncation and then writes it: a driver killed in between
(kill -9, the out-of-memory killer, a node's power) leaves that file empty in the run
directory. Measured here, 40 kills at random moments of such copies left 24 empty files: an
empty ``result.json`` loses a trial's whole history on resume, an empty experiment state makes
the run impossible to resume.

:func:`upload` copies each file to a temporary name beside it and renames it into place, so a
run directory's file is always a whole version, the last one or the one before. It copies
the round's own files (the experiment state, the searcher's, ASHA's rung records) after the
trials' files, so the state never names a result its trial's files lack.

Ray copies every file of every trial at every snapshot. :class:`Uploads` looks only in the
folders of the trials that can still write (not ended, or ended since the last two copies:
:meth:`Uploads.note`), and at every file only every :data:`FULL_EVERY_S` seconds, and skips a
file unchanged since it last copied it: per copy, its work follows the trials running, not
all the trials of the sweep. A trial's ``timed-out.trace`` is copied only once something is in
it: while the trial runs it is the empty file its watchdog holds open (:mod:`tuner.watchdog`),
which the trial removes when it ends. Object stores (S3, GCS) write an object whole by
themselves: there Ray's copy stands, told to leave such empty files out (its ``exclude``).
:func:`tuner.ray.tune_patches.whole_file_syncs` puts it in Ray's place.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tuner.records import TIMEOUT_TRACE_FILE

log = logging.getLogger(__name__)

# The name a file is copied under before it is renamed into place; one writer (the driver) a
# folder, so a copy cut short is overwritten by the next one and renamed away.
PARTIAL = ".{}.tuner-partial"
# Every file of the staging folder is looked at this often, whatever :meth:`Uploads.note` says.
FULL_EVERY_S = 30.0
# An ended trial's folder is looked in by this many copies after its end was noted.
AFTER_END = 2
ENDED = ("TERMINATED", "ERROR")

Copied = dict[str, tuple[int, int]]  # a staging file: its (size, mtime_ns) when last copied


class Uploads:
    """A replacement for Ray's ``_upload_to_fs_path(local_path, fs, fs_path, exclude)``: a
    folder copied to a local filesystem whole file by whole file (:func:`upload`); everything
    else (another filesystem, one file, a copy with exclusions) to ``ray_upload``. One for each
    experiment: it remembers what it copied and which trials can still write."""

    def __init__(self, ray_upload: Callable[..., None]) -> None:
        self.ray_upload = ray_upload
        self.copied: Copied = {}
        self._folders: frozenset[str] | None = None  # None: every folder
        self._ended: dict[str, int] = {}  # trial id: the copies made when its end was noted
        self._copies = 0
        self._full_at = time.monotonic()

    # Ray keeps the copy it launched last in the syncer of the experiment's storage, which Tune
    # deep-copies and pickles with every trial it creates: that carries Ray's function there,
    # and here an empty Uploads (a trial's process never copies with it), not what this one
    # remembers, which grows with the trials and changes under the copy in the background.
    def __deepcopy__(self, memo: dict[int, Any]) -> Uploads:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Uploads, (self.ray_upload,))

    def note(self, trials: Iterable[Any]) -> None:
        """Before a snapshot (the driver's thread): the folders the next copies look in, those of
        Ray Tune's ``trials`` that are not ended or ended less than :data:`AFTER_END` copies ago."""
        folders = set()
        try:
            for trial in trials:
                if trial.status in ENDED:
                    if self._copies - self._ended.setdefault(trial.trial_id, self._copies) >= AFTER_END:
                        continue
                else:
                    self._ended.pop(trial.trial_id, None)  # resumed or restarted
                name = getattr(trial.storage, "trial_dir_name", None)
                if name:
                    folders.add(name)
        except Exception:  # a trial as this Ray does not make them: look in every folder
            log.debug("the trials' folders could not be listed; every folder is copied", exc_info=True)
            self._folders = None
            return
        self._folders = frozenset(folders)

    def __call__(self, local_path: str, fs: Any, fs_path: str, exclude: list[str] | None = None) -> None:
        import pyarrow.fs

        if not os.path.isdir(local_path):
            self.ray_upload(local_path=local_path, fs=fs, fs_path=fs_path, exclude=exclude)
            return
        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem):  # Ray's copy, less the armed watchdogs' files
            exclude = [*(exclude or []), *self._armed(Path(local_path))] or exclude
            self.ray_upload(local_path=local_path, fs=fs, fs_path=fs_path, exclude=exclude)
            return
        folders = self._folders
        now = time.monotonic()
        if now - self._full_at >= FULL_EVERY_S:
            folders, self._full_at = None, now
        self._copies += 1
        upload(Path(local_path), Path(fs_path), self.copied, folders)

    def _armed(self, source: Path) -> list[str]:
        """Ray's exclusion patterns for the empty ``timed-out.trace`` files of the trials that can
        still write (their watchdogs', armed): one look in each such folder of ``source``."""
        folders = self._folders
        if folders is None:
            folders = frozenset(e.name for e in os.scandir(source) if e.is_dir(follow_symlinks=False))
        out = []
        for name in sorted(folders):
            try:
                if (source / name / TIMEOUT_TRACE_FILE).stat().st_size == 0:
                    out.append(glob.escape(f"{name}/{TIMEOUT_TRACE_FILE}"))
            except OSError:  # none: no trial_timeout, or the trial ended and removed it
                continue
        return out


def upload(source: Path, target: Path, copied: Copied, folders: frozenset[str] | None = None) -> int:
    """Copy the folder ``source`` into ``target`` (made where missing), each file through a
    temporary name and a rename, the files of ``source`` itself after those of its
    subfolders; of the subfolders only ``folders`` (names in ``source``; None: all). A file
    whose size and modification time are those it had at its last copy here (``copied``) is
    skipped. Returns how many files it copied."""
    target.mkdir(parents=True, exist_ok=True)
    top: list[tuple[Path, Path]] = []
    made: set[Path] = {target}
    count = 0
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if folders is None or entry.name in folders:
                for folder, dirs, files in os.walk(entry.path):
                    dirs.sort()
                    into = target / os.path.relpath(folder, source)
                    for name in sorted(files):
                        count += _copy(Path(folder, name), into / name, copied, made)
        elif entry.is_file(follow_symlinks=False):
            top.append((Path(entry.path), target / entry.name))
    for src, dst in top:
        count += _copy(src, dst, copied, made)
    return count


def _copy(src: Path, dst: Path, copied: Copied, made: set[Path]) -> int:
    try:
        st = src.stat()
    except FileNotFoundError:  # removed from the staging folder since it was listed
        return 0
    key = str(src)
    if copied.get(key) == (st.st_size, st.st_mtime_ns):
        return 0
    if st.st_size == 0 and src.name == TIMEOUT_TRACE_FILE:  # a trial's watchdog, armed: nothing in it yet
        return 0
    if dst.parent not in made:
        dst.parent.mkdir(parents=True, exist_ok=True)
        made.add(dst.parent)
    partial = dst.with_name(PARTIAL.format(dst.name))
    try:
        shutil.copyfile(src, partial)
    except FileNotFoundError:
        if not src.exists():  # removed while it was copied
            partial.unlink(missing_ok=True)
            return 0
        raise
    os.replace(partial, dst)
    copied[key] = (st.st_size, st.st_mtime_ns)
    return 1
