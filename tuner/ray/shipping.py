"""What Ray's runtime environment will ship of the user's folder, checked before it starts.

Ray packs a ``working_dir`` (and each folder of ``py_modules``) by opening every entry it does
not exclude, and ``open()`` of a named pipe waits for a writer that never comes: ``tuner run``
hung without a word (a character device can hang or never end the same way). :func:`check`
walks the folders the way Ray's packaging does -- its own traversal, with the runtime
environment's ``excludes`` (and Ray's default ones for a ``working_dir``) and the ``.gitignore`` (unless ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``)
and ``.rayignore`` files it honours -- and refuses anything that is neither a regular file nor
a folder (after links) in one line, before Ray starts. It stats each entry once: a folder of a
few thousand files costs milliseconds, less than Ray's own hashing of it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from tuner.errors import InputError

log = logging.getLogger(__name__)

_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def blocking(folder: Path, excludes: list[str]) -> tuple[Path, str] | None:
    """The first entry under ``folder`` that Ray would ship and cannot read to its end
    (``(path, what it is)``), or None. A socket, a dangling link or an entry that cannot be
    stat'ed is passed over, as Ray's packaging passes over what it cannot open."""
    try:
        from ray._private.ray_constants import RAY_RUNTIME_ENV_IGNORE_GITIGNORE
        from ray._private.runtime_env.packaging import _dir_travel, _get_excludes
    except ImportError as e:  # Ray's packaging moved: nothing checked, Ray's own behaviour stands
        log.debug("working_dir not checked: %s", e)
        return None
    found: list[tuple[Path, str]] = []

    class _Found(Exception):
        pass

    def handler(path: Path) -> None:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return
        kind = _KINDS.get(stat.S_IFMT(mode))
        if kind is not None:
            found.append((path, kind))
            raise _Found

    include_gitignore = os.environ.get(RAY_RUNTIME_ENV_IGNORE_GITIGNORE, "0") != "1"
    quiet = logging.getLogger("tuner.ray.shipping.travel")
    quiet.disabled = True  # Ray's "Issue with path" line for the entry found: said in our own line instead
    try:
        _dir_travel(folder, [_get_excludes(folder, excludes)], handler, include_gitignore, logger=quiet)
    except _Found:
        pass
    except (OSError, RecursionError) as e:  # Ray's own packaging meets the same: it says so itself
        log.debug("working_dir check of %s stopped: %s", folder, e)
    return found[0] if found else None


def check(runtime_env: dict[str, Any] | None) -> None:
    """Refuse a runtime environment whose ``working_dir`` or ``py_modules`` folders hold an
    entry Ray's packaging would block on.

    Raises:
        InputError: one line naming the entry, what it is and how to leave it out.
    """
    if not runtime_env:
        return
    excludes = list(runtime_env.get("excludes") or [])
    try:  # what Ray leaves out of a working_dir of its own accord (.git, .venv, ...; overridable)
        from ray._private.ray_constants import get_runtime_env_default_excludes

        default_excludes = list(get_runtime_env_default_excludes())
    except ImportError:
        default_excludes = []
    folders = [runtime_env["working_dir"]] if runtime_env.get("working_dir") else []
    folders += [p for p in runtime_env.get("py_modules") or [] if isinstance(p, (str, Path)) and Path(p).is_dir()]
    for folder in folders:
        hit = blocking(
            Path(folder), default_excludes + excludes if folder == runtime_env.get("working_dir") else excludes
        )
        if hit is not None:
            path, kind = hit
            raise InputError(
                f"{path}: {kind} in {folder}, the folder of the sweep's code that Ray ships to every node: "
                "Ray would wait on it without end; move it out, or list it in that folder's .rayignore"
            )
