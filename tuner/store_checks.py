"""A store asked before a run writes there (:func:`tuner.storage.check_storage`): that it
answers, holds the bucket, and takes writes the way a run's first writes are made, so that a typo
or read-only credentials cost a second and leave nothing half-made in the bucket."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tuner import storage
from tuner.errors import InputError
from tuner.store_errors import store_cause, store_failure


def reach(uri: str, flag: str) -> None:
    """Fail with one line when the store behind ``uri`` does not answer, lacks its bucket, or
    refuses to be written to (before anything of the run is written there).

    Raises:
        StoreError: the store cannot be reached (the environment's problem: exit 1).
        InputError: no such bucket, or the credentials given may not write there (exit 2).
    """
    import pyarrow.fs

    where = f"{flag}: {uri[:200]}"
    try:
        fs, root = storage._filesystem(uri)
        bucket = root.strip("/").split("/", 1)[0]
        info = fs.get_file_info(bucket)
    except (OSError, ValueError) as e:
        raise store_failure(where, "cannot be used", e) from None
    if info.type == pyarrow.fs.FileType.NotFound:
        raise InputError(
            f"{where}: no bucket {bucket!r} (create it first; for an S3-compatible store, is AWS_ENDPOINT_URL_S3 set?)"
        )
    check_writes(fs, root, where)


WRITE_CHECK = ".tuner-write-check"
# pyarrow's "When copying key 'a' in bucket 'b' to key ...: " before what the store said
_WHEN = re.compile(r"^When [^:]*: (?=AWS Error)")


def check_writes(fs: Any, root: str, where: str) -> None:
    """Make a test folder ``root/.tuner-write-check-<id>`` and write a file in it as a run's
    first writes do (:meth:`RunStore.mkdir`, then :meth:`RunStore.push`: an upload under a
    temporary name, then a move), then delete it: credentials that may read but not write are
    refused here, before a run directory is made, rather than half-way through making one. Each
    check starts afresh under names of its own (two drivers checking at once, or a folder left
    by a check before, change nothing), and the line leaves the names out: the same refusal
    reads the same each time. The folder is removed whatever happened, as far as the store lets
    it; the line says when test folders are left."""
    import pyarrow.fs

    folder = f"{root.rstrip('/')}/{WRITE_CHECK}-{uuid.uuid4().hex[:12]}"
    try:
        fs.create_dir(folder, recursive=True)
        with fs.open_output_stream(f"{folder}/.check.uploading") as out:
            out.write(b"tuner checks that it may write here; this folder is deleted at once\n")
        fs.move(f"{folder}/.check.uploading", f"{folder}/check")
        fs.delete_dir(folder)
    except OSError as e:
        try:  # what the check may have left
            if fs.get_file_info(folder).type != pyarrow.fs.FileType.NotFound:
                fs.delete_dir(folder)
        except OSError:
            pass
        raise store_failure(
            where, "cannot write there", e, _left_checks(fs, root), _WHEN.sub("", store_cause(e))
        ) from None


def _left_checks(fs: Any, root: str) -> str:
    """``; ...`` when test folders of write checks (this one's or those before) are at ``root``:
    the store refused to delete them. Said whichever check left them, so that the same store
    gives the same line each time."""
    import pyarrow.fs

    try:
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root.rstrip("/"), recursive=False, allow_not_found=True))
    except OSError:
        return ""
    if not any(i.base_name.startswith(f"{WRITE_CHECK}-") for i in infos):
        return ""
    return f"; test folders {WRITE_CHECK}-* are left there (the store refused to delete them)"
