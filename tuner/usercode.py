"""A user's own code named in a sweep file: found, imported, and shipped to every node.

A sweep may name functions as ``"package.module:function"`` (``function``, ``model.name``,
``data.name``). The module is looked up beside the sweep file, then in the current folder,
then among installed packages -- no ``PYTHONPATH`` needed. An export in a run directory
(``runs/NAME/best.yaml``) is not beside the user's code: for it the folder of the sweep file
the run started from (``run.json``'s provenance) is looked in too, so ``tuner retest`` and
``tuner run`` of an export find the function wherever they are started. On a Ray cluster the
folder the module was found in travels to every node with Ray's runtime environment
(:func:`runtime_env`), so a worker imports the same code without the user copying files.

A sweep or export file that a user runs is code (like a Python script); a model file is
data and never names code that tuner imports (see :mod:`tuner.final`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# Left out of a folder shipped to the cluster: what no trial imports and what may be large.
SHIP_EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "runs",
    "__pycache__",
    "*.pt",
    "*.ckpt",
    "*.npz",
    ".pytest_cache",
    "node_modules",
]


RUN_FILE = "run.json"  # tuner.records.RUN_FILE (records sits above this module's layer)
_MAX_RUN_FILE = 1 << 20  # bytes read of a run.json looked at for its sweep file's folder
_MAX_HOPS = 4  # a run of an export of a run of an export...: how far back its sweep file is followed


def search_path(base_dir: str | Path | None) -> list[str]:
    """Where a user's module is looked up, first to last: the sweep file's folder, the folder
    of the sweep file a run directory started from when ``base_dir`` is one (an export kept in
    its run directory), the current folder (then the installed packages, as always)."""
    out: list[str] = []
    folders = [] if base_dir is None else [Path(base_dir), *recorded_folders(base_dir)]
    for folder in (*folders, Path.cwd()):
        text = str(Path(folder).resolve())
        if text not in out:
            out.append(text)
    return out


def recorded_folders(run_dir: str | Path) -> list[Path]:
    """The folder of the sweep file a run directory was started from (``run.json``:
    ``provenance.sweep_file``), followed back when that file was itself an export in another
    run directory; folders that exist, nearest first. Empty for any other folder, and for a
    ``run.json`` that cannot be read (it is only a hint)."""
    out: list[Path] = []
    folder = Path(run_dir)
    for _ in range(_MAX_HOPS):
        try:
            with open(folder / RUN_FILE, "rb") as f:
                meta = json.loads(f.read(_MAX_RUN_FILE))
            sweep_file = meta["provenance"]["sweep_file"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            break
        if not isinstance(sweep_file, str) or not sweep_file or len(sweep_file) > 4096:
            break
        folder = Path(sweep_file).parent
        if not folder.is_dir() or folder in out:
            break
        out.append(folder)
    return out


@contextlib.contextmanager
def on_path(base_dir: str | Path | None) -> Iterator[None]:
    """:func:`search_path` at the front of ``sys.path`` for the duration."""
    added = [p for p in search_path(base_dir) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def add_to_path(base_dir: str | Path | None) -> None:
    """Put :func:`search_path` on ``sys.path`` for good (the driver of a run: Ray's local
    workers start with the driver's path)."""
    for p in reversed(search_path(base_dir)):
        if p not in sys.path:
            sys.path.insert(0, p)


def check_ref(ref: str) -> None:
    """Raise ImportError unless ``ref`` has the form ``package.module:function``."""
    if not isinstance(ref, str) or len(ref) > 300 or not _REF.fullmatch(ref):
        raise ImportError("must be 'package.module:function' (a module path, a colon, a function name)")


def resolve(ref: str, base_dir: str | Path | None = None) -> Callable[..., Any]:
    """Import ``"package.module:function"`` (see :func:`search_path`) and return the function.

    Raises:
        ImportError: a malformed reference, a module that cannot be imported (its own error
            named), or no such callable; the message is one line.
    """
    check_ref(ref)
    module_name, _, attr = ref.partition(":")
    with on_path(base_dir):
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # a user's module may fail in any way while importing
            where = " or ".join(search_path(base_dir))
            if isinstance(e, ModuleNotFoundError) and e.name and module_name.startswith(e.name):
                raise ImportError(
                    f"cannot be imported: no module {e.name!r} (looked in {where} and the installed packages)"
                ) from None
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ImportError(
                f"cannot be imported: importing {module_name!r} raised {type(e).__name__}: {first}"
            ) from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ImportError(f"cannot be imported: module {module_name!r} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def _origin(module_name: str, base_dir: str | Path | None) -> Path | None:
    """The folder a top-level module is found in when it is the user's own (beside the sweep
    file or in the current folder); None for an installed one."""
    top = module_name.split(".")[0]
    with on_path(base_dir):
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("built-in", "frozen"):
        origin = Path(spec.origin).resolve()
        folder = origin.parent.parent if origin.name == "__init__.py" else origin.parent
    elif spec.submodule_search_locations:  # a namespace package: a folder without __init__.py
        folder = Path(next(iter(spec.submodule_search_locations))).resolve().parent
    else:
        return None
    for candidate in search_path(base_dir):
        if folder == Path(candidate):
            return folder
    return None


def runtime_env(refs: Sequence[str], base_dir: str | Path | None) -> dict[str, Any]:
    """Ray's runtime environment that ships the user's modules behind ``refs`` to every node:
    the folder the first of them lives in as ``working_dir`` (Ray uploads it once, unpacks it
    on each node and starts the job's workers in it, first on their ``sys.path``;
    :data:`SHIP_EXCLUDES`, the folder's ``.gitignore`` and ``.rayignore`` left out), and a
    module or package from another folder as ``py_modules`` (that package alone). Empty when
    every module is installed."""
    folders: list[Path] = []
    packages: list[str] = []
    for ref in refs:
        module_name = ref.partition(":")[0]
        folder = _origin(module_name, base_dir)
        if folder is None:
            continue
        if not folders:
            folders.append(folder)
        elif folder != folders[0]:
            top = module_name.split(".")[0]
            package = folder / top if (folder / top).is_dir() else folder / f"{top}.py"
            if package.exists() and str(package) not in packages:
                packages.append(str(package))
    env: dict[str, Any] = {}
    if folders:
        env = {"working_dir": str(folders[0]), "excludes": list(SHIP_EXCLUDES)}
    if packages:
        env["py_modules"] = packages
    return env
