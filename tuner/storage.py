"""Where a run directory lives: a local path (a shared mount included) or a cloud URI.

    store = RunStore.create("s3://bucket/runs", "quickstart")   # or "runs", "/mnt/shared/runs"
    store.tune_storage   # what Ray Tune gets as its storage path: s3://bucket/runs/quickstart
    store.local          # where tuner reads and writes its own files (run.json, sweep.yaml...)

For a local path both are the run directory itself. For a URI, Ray Tune writes the rounds
(trials' results and checkpoints) to the URI, and tuner keeps a local mirror of the run
directory under ``$TUNER_CACHE/remote-runs``: its own files are written there and uploaded
(:meth:`RunStore.push`), and a round's results are downloaded there (without checkpoints,
:meth:`RunStore.pull`) before they are read. URIs go through pyarrow's file systems, the
same ones Ray Tune uses (``s3://``, ``gs://``, ``hdfs://``, ``abfs://``...; credentials come
from the usual environment of each cloud), and ``file://`` for a path on this machine.

An S3-compatible store other than AWS (MinIO, Ceph, moto...) is reached through the
environment pyarrow reads, in the driver and on every node: ``AWS_ENDPOINT_URL_S3`` (or
``AWS_ENDPOINT_URL``) such as ``http://minio:9000`` (``http://`` turns TLS off),
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_REGION`` (see ``docs/storage.md``).
A URI's query (``?endpoint_override=...``) is not supported: the run directory's paths are
joined onto the URI.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.errors import InputError
from tuner.lock import LOCK_FILE, DriverLock
from tuner.outputs import check_output, expand_user, real_path
from tuner.store_errors import StoreError, store_cause, store_failure, why

# Schemes pyarrow.fs (and so Ray Tune's storage_path) understands.
SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
# Files and folders of a round that a reader never needs: model weights and Tune's own state.
_SKIP_DOWNLOAD = re.compile(r"(^|/)checkpoint_[^/]*(/|$)")


def is_uri(text: str) -> bool:
    """True for ``scheme://...`` (a Windows drive ``C:\\`` is not a URI)."""
    return _URI.match(str(text)) is not None


def check_storage(text: str | os.PathLike[str], flag: str = "--storage", reach: bool = False) -> str:
    """``text`` as a storage location: a local path, or a URI with a scheme of :data:`SCHEMES`.
    ``reach``: for a URI, also ask the store whether its bucket is there and may be written to
    (before a run starts Ray, so that a typo in a bucket name or read-only credentials cost a
    second, not a cluster start, and leave nothing in the bucket).

    Raises:
        InputError: an unknown scheme, a URI without a path or with a query, a local path
            tuner may not write to, or (``reach``) a store with no such bucket or that refuses
            these credentials to read or write there.
        StoreError: (``reach``) the store cannot be reached.
    """
    s = os.fspath(text)
    m = _URI.match(s)
    if m is None:
        if not s.strip():
            raise InputError(f"{flag}: empty path")
        if flag == "--storage":
            local = real_path(check_output(s, flag, folder=True), flag)
            # A run's folders go below it (<name>/trials/<a trial's long folder name>/...): a path
            # near PATH_MAX is accepted by the system and then fails every trial inside Ray.
            room = 300
            existing = local
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            try:
                path_max = os.pathconf(existing, "PC_PATH_MAX")
            except (OSError, ValueError):
                path_max = 4096
            length = len(os.fsencode(local))
            if path_max > 0 and length > path_max - room:
                raise InputError(
                    f"{flag}: {s[:80]}...: the path is {length} bytes long; a run's folders need {room} bytes "
                    f"more below it, so it must be at most {path_max - room} bytes (PATH_MAX {path_max})"
                )
        return s
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in SCHEMES:
        raise InputError(
            f"{flag}: {s!r} has the unsupported scheme {scheme!r} (a local path or one of "
            + ", ".join(f"{x}://" for x in SCHEMES)
            + ")"
        )
    if not rest.strip("/"):
        raise InputError(f"{flag}: {s!r} names no bucket or path")
    if "?" in rest or "#" in rest:
        raise InputError(
            f"{flag}: {s[:200]!r}: a URI with a query is not supported; set the endpoint in the environment "
            "(AWS_ENDPOINT_URL_S3=http://host:9000 for MinIO and other S3-compatible stores, see docs/storage.md)"
        )
    if scheme == "file" and flag == "--storage" and rest.startswith("/"):  # a local path as a URI: its rules
        check_output(urllib.parse.unquote(rest), flag, folder=True)
    if reach and scheme != "file":
        from tuner.store_checks import reach as reach_store

        reach_store(s, flag)
    return s


def _filesystem(uri: str) -> tuple[Any, str]:
    """The pyarrow file system of ``uri``, and the path in it."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def mirror_dir(uri: str) -> Path:
    """The local mirror of the run directory at ``uri``."""
    from tuner.models.sources import cache_dir

    name = uri.rstrip("/").rsplit("/", 1)[-1] or "run"
    return cache_dir() / "remote-runs" / f"{hashlib.sha256(uri.encode()).hexdigest()[:12]}-{name}"


@dataclass
class RunStore:
    """One run directory: ``local`` (what tuner reads and writes) and ``uri`` (None for a
    local run; else the run directory in the cloud, which ``local`` mirrors)."""

    local: Path
    uri: str | None = None
    made: Path | None = field(default=None, compare=False, repr=False)  # the top folder claim made
    ident: tuple[int, int] | None = field(default=None, compare=False, repr=False)  # (device, inode) of local

    def present(self) -> bool:
        """Whether ``local`` is still the folder this store claimed or opened (not deleted,
        moved away, or replaced by another folder of that name)."""
        if self.ident is None:
            return True
        try:
            st = os.stat(self.local)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def remember(self) -> None:
        """Note which folder ``local`` is now (:meth:`present` checks it is still that one)."""
        st = os.stat(self.local)
        self.ident = (st.st_dev, st.st_ino)

    @property
    def tune_storage(self) -> str:
        """The run directory as Ray Tune's ``storage_path`` (rounds go under it)."""
        return self.uri if self.uri is not None else str(self.local)

    @property
    def location(self) -> str:
        """The run directory as the user names it (the URI, else the local path)."""
        return self.uri if self.uri is not None else str(self.local)

    @classmethod
    def create(cls, storage: str | os.PathLike[str], name: str) -> RunStore:
        """A new, empty run directory ``storage/name`` (``name-2``, ``-3``... when taken).
        Nothing is written yet."""
        from tuner.spec.schema import NAME_PATTERN, NAME_RULE

        if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
            raise InputError(f"name: {name[:60]!r} {NAME_RULE}")
        s = check_storage(storage)
        if not is_uri(s):
            base = real_path(expand_user(s, "--storage"), "--storage") / name
            candidate, n = base, 1
            while os.path.lexists(candidate) and (
                candidate.is_symlink() or not candidate.is_dir() or any(candidate.iterdir())
            ):  # an empty folder is free; a link (even dangling) never is
                n += 1
                candidate = base.with_name(f"{name}-{n}")
            return cls(candidate)
        import pyarrow.fs

        candidate, n = name, 1
        try:
            fs, root = _filesystem(s)
            while True:
                info = fs.get_file_info(f"{root.rstrip('/')}/{candidate}")
                if info.type == pyarrow.fs.FileType.NotFound:
                    break
                if info.type == pyarrow.fs.FileType.Directory and not fs.get_file_info(
                    pyarrow.fs.FileSelector(info.path, recursive=False)
                ):
                    break
                n += 1
                candidate = f"{name}-{n}"
        except (OSError, ValueError) as e:  # no such bucket, no credentials, the store is down
            raise store_failure(f"--storage: {s[:200]}", "cannot be used", e) from None
        uri = join(s, candidate)
        local = mirror_dir(uri)
        if local.exists():  # an old mirror of a run deleted since
            import shutil

            shutil.rmtree(local)
        return cls(local, uri)

    @classmethod
    def claim(cls, storage: str | os.PathLike[str], name: str) -> tuple[RunStore, DriverLock]:
        """A new run directory as :meth:`create` names it, made and held by this driver (its
        :class:`tuner.lock.DriverLock`): two drivers starting at the same moment never get the
        same folder (the lock file is created exclusively; the loser takes the next name).
        :meth:`release` undoes it while nothing else is in the folder.

        Raises:
            InputError: as :meth:`create`, or the folder cannot be made.
            StoreError: the store of a URI cannot be reached.
        """
        for _ in range(100):
            store = cls.create(storage, name)
            missing = [p for p in (store.local, *store.local.parents) if not os.path.lexists(p)]
            store.made = missing[-1] if missing else None
            try:
                store.local.mkdir(parents=True, exist_ok=True)
                lock = DriverLock.claim(store.local, create=True)
                store.remember()
                return store, lock
            except FileExistsError:  # another driver claimed it first (or a link appeared): the next name
                continue
            except OSError as e:
                raise InputError(f"--storage: {store.local}: cannot be created ({e.strerror or e})") from None
        raise InputError(f"--storage: {storage}: no free run directory for {name!r} after 100 tries")

    def release(self, lock: DriverLock) -> None:
        """Give back a run directory :meth:`claim` took, and remove it if nothing but the lock
        file was written to it (a run refused before it started leaves nothing behind)."""
        lock.release()
        try:
            if [p.name for p in self.local.iterdir()] != [LOCK_FILE]:
                return
            (self.local / LOCK_FILE).unlink()
            folder = self.local
            while self.made is not None:  # the folder, and the ones above it, that claim made
                folder.rmdir()
                if folder == self.made:
                    break
                folder = folder.parent
        except OSError:
            pass

    @classmethod
    def open(cls, location: str | os.PathLike[str]) -> RunStore:
        """An existing run directory (a path or a URI); a URI's files are downloaded first.

        Raises:
            InputError: a URI with an unsupported scheme, or one that holds no run or may not
                be read with the credentials given.
            StoreError: the store of the URI cannot be reached.
        """
        s = check_storage(location, flag="RUN_DIR")
        if not is_uri(s):
            return cls(real_path(expand_user(s, "RUN_DIR"), "RUN_DIR"))  # Tune restores from absolute paths only
        store = cls(mirror_dir(s.rstrip("/")), s.rstrip("/"))
        try:
            store._pull("")  # a store that fails here: the RUN_DIR given cannot be read
        except FileNotFoundError:
            raise InputError(f"{s[:200]}: cannot read the run directory: there is none") from None
        except (OSError, ValueError) as e:
            raise store_failure(s[:200], "cannot read the run directory", e) from None
        from tuner.records import RUN_FILE

        if not (store.local / RUN_FILE).is_file():  # a run's first upload: said of the URI, not of the mirror
            raise InputError(f"{s[:200]}: not a tuner run directory (no {RUN_FILE})")
        return store

    def discard(self, names: tuple[str, ...]) -> None:
        """Remove, at the URI, a run directory a new run had begun and then could not start (its
        store failed before the run did): nothing half-made is left there. Only while it holds
        nothing but ``names`` (the files the run uploads first, and their temporary names); as far
        as the store lets it, silently (the error that stopped the run is what is said)."""
        if self.uri is None:
            return
        import pyarrow.fs

        ours = {*names, *(f".{n}.uploading" for n in names)}
        try:
            fs, root = _filesystem(self.uri)
            infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
            if any(i.type == pyarrow.fs.FileType.File and i.path[len(root) :].lstrip("/") not in ours for i in infos):
                return  # another writer's files: not this run's to remove
            fs.delete_dir(root)
        except (OSError, ValueError):
            pass

    def check_writes(self, flag: str = "RUN_DIR") -> None:
        """For a URI run: check, as ``tuner run``'s pre-flight does, that the credentials may
        write beside the run directory (a resume writes ``run.json`` first thing).

        Raises:
            InputError: the store refuses these credentials to write there.
            StoreError: the store cannot be reached.
        """
        if self.uri is None:
            return
        scheme, _, path = self.uri.rstrip("/").partition("://")
        parent = f"{scheme}://{path.rpartition('/')[0] or path}"  # a run at a bucket's top: the bucket
        try:
            fs, root = _filesystem(parent)
        except (OSError, ValueError) as e:
            raise store_failure(f"{flag}: {self.uri[:200]}", "cannot be used", e) from None
        from tuner.store_checks import check_writes

        check_writes(fs, root, f"{flag}: {self.uri[:200]}")

    def mkdir(self) -> None:
        """Make the run directory (and its folder at the URI).

        Raises:
            InputError: it cannot be made (a file where a folder must go, no permission).
            StoreError: the store of a URI cannot be reached.
        """
        try:
            self.local.mkdir(parents=True, exist_ok=True)
            if self.uri is not None:
                fs, path = _filesystem(self.uri)
                fs.create_dir(path, recursive=True)
        except OSError as e:
            where = self.uri or str(self.local)
            if self.uri is None:
                raise InputError(
                    f"--storage: {where[:200]}: cannot make the run directory ({store_cause(e)})"
                ) from None
            raise store_failure(f"--storage: {where[:200]}", "cannot make the run directory", e) from None

    def push(self, *names: str) -> None:
        """Upload the run directory's own files ``names`` (e.g. ``run.json``) to the URI; a
        reader there sees the old file or the new one, never a part (temporary name, then a
        move; an object store's upload is whole anyway)."""
        if self.uri is None:
            return
        fs, root = _filesystem(self.uri)
        for name in names:
            src = self.local / name
            if not src.is_file():
                continue
            target = f"{root.rstrip('/')}/{name}"
            folder, _, base = target.rpartition("/")
            tmp = f"{folder}/.{base}.uploading"  # beside the target (a name may hold a folder: report/...)
            try:
                with fs.open_output_stream(tmp) as out:
                    out.write(src.read_bytes())
                fs.move(tmp, target)
            except OSError as e:  # the store went away, or refuses this writer
                raise StoreError(f"cannot write {self.uri}/{name}: {why(e)}") from e

    def pull(self, subdir: str = "") -> None:
        """Download the run directory (or its ``subdir``) from the URI into the mirror,
        checkpoints left out."""
        if self.uri is None:
            return
        try:
            self._pull(subdir)
        except FileNotFoundError:
            raise
        except OSError as e:  # the store went away, or refuses this reader
            raise StoreError(f"cannot read {self.uri}: {why(e)}") from e

    def _pull(self, subdir: str) -> None:
        import pyarrow.fs

        fs, root = _filesystem(self.uri or "")
        base = root.rstrip("/")
        start = f"{base}/{subdir.strip('/')}" if subdir else base
        info = fs.get_file_info(start)
        if info.type == pyarrow.fs.FileType.NotFound:
            if subdir:
                return
            raise FileNotFoundError(f"{self.uri}: no such run directory")
        for f in fs.get_file_info(pyarrow.fs.FileSelector(start, recursive=True)):
            if f.type != pyarrow.fs.FileType.File:
                continue
            rel = f.path[len(base) :].lstrip("/")
            if _SKIP_DOWNLOAD.search(rel) or rel.rsplit("/", 1)[-1].endswith(".uploading"):
                continue
            dest = self.local / rel
            if ".." in Path(rel).parts or Path(rel).is_absolute():  # a hostile key never leaves the mirror
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(f.path) as src:
                data = src.read()
            tmp = dest.with_name(f".{dest.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
