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
import functools
import importlib
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tuner.errors import first_line

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
        try:
            text = str(Path(folder).resolve())
        except (OSError, RuntimeError):  # a loop of links (RuntimeError): no folder to look in
            continue
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
        module, _, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        hint = ""
        if module.endswith(".py") and attr:  # a file's path or name: the module is its dotted path
            dotted = module[:-3].strip("./").replace("/", ".")
            hint = f"; drop the '.py' and write the module's dotted path: {dotted}:{attr}"
        raise ImportError(f"must be 'package.module:function' (a module path, a colon, a function name){hint}")


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
                hint = f"; drop the '.py': {module_name[:-3]}:{attr}" if module_name.endswith(".py") else ""
                raise ImportError(
                    f"cannot be imported: no module {e.name!r} (looked in {where} and the installed packages){hint}"
                ) from None
            raise ImportError(
                f"cannot be imported: importing {module_name!r} raised {type(e).__name__}: {first_line(e)}"
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


# -- a file beside the user's code that hides a module Python or tuner imports -------------

_THEIRS = frozenset({"models"})  # docs/functions.md: a `models` of the user's is theirs, never tuner's
# Standard-library names nothing a sweep runs imports: a user's `test.py` beside the sweep is theirs.
_UNUSED_STDLIB = frozenset(
    {"test", "this", "antigravity", "turtle", "turtledemo", "idlelib", "tkinter", "ensurepip", "venv", "lib2to3"}
)
_TUNER_EXTRAS_SKIPPED = frozenset({"dev"})  # tuner's own tests and lint: nothing a sweep runs
_MAX_ENTRIES = 10_000  # of one folder looked through for modules that shadow others


def shadowing(refs: Sequence[str], base_dir: str | Path | None) -> list[tuple[Path, str, str]]:
    """The modules beside the user's code that would be imported instead of a module of the
    standard library, of tuner or of a package tuner depends on: ``(path, module, kind)``
    with kind ``"standard-library"`` or ``"installed"``.

    Looked through: the sweep file's folder, the folders a run directory records
    (:func:`recorded_folders`), and the folder each module of ``refs`` is found in -- what tuner
    puts first on ``sys.path`` here and ships as Ray's ``working_dir``, where a ``json.py``
    hangs every worker. A ``.py`` file, a package (a folder with ``__init__.py``), or a folder
    without one where Python would take it (a namespace package) counts; ``models`` is the
    user's own by contract.
    """
    folders: list[Path] = []
    if base_dir is not None:
        folders += [Path(base_dir), *recorded_folders(base_dir)]
    for ref in refs:
        folder = _origin(ref.partition(":")[0], base_dir)
        if folder is not None:
            folders.append(folder)
    out: list[tuple[Path, str, str]] = []
    seen: set[Path] = set()
    for folder in folders:
        try:
            folder = folder.resolve()
        except (OSError, RuntimeError):
            continue
        if folder in seen:
            continue
        seen.add(folder)
        for path, name in _candidates(folder):
            kind = _hidden(name, folder)
            if kind is not None:
                out.append((path, name, kind))
    return out


def _candidates(folder: Path) -> list[tuple[Path, str]]:
    """``(path, module name)`` of each module or package (or namespace folder) in ``folder``."""
    out: list[tuple[Path, str]] = []
    try:
        with os.scandir(folder) as entries:
            for i, entry in enumerate(entries):
                if i >= _MAX_ENTRIES:
                    break
                name = entry.name[:-3] if entry.name.endswith(".py") else entry.name
                if not name.isidentifier() or name in _THEIRS:
                    continue
                try:
                    if entry.name.endswith(".py") and entry.is_file() or entry.is_dir():
                        out.append((Path(entry.path), name))
                except OSError:
                    continue
    except OSError:
        pass
    return sorted(out)


def _hidden(name: str, folder: Path) -> str | None:
    """The kind of module ``folder``'s ``name`` hides from an import of ``name`` with
    ``folder`` first on ``sys.path`` (None: it hides nothing tuner cares about)."""
    if name in sys.builtin_module_names or name in _UNUSED_STDLIB:  # built-ins are found before any folder
        return None
    kind = "standard-library" if name in sys.stdlib_module_names else "installed"
    try:
        mine = importlib.machinery.PathFinder.find_spec(name, [str(folder)])
        if mine is None or importlib.machinery.FrozenImporter.find_spec(name) is not None:
            return None
        theirs = _installed_spec(name, folder)
    except Exception:  # a folder or a finder that cannot be read: nothing to tell
        return None
    if theirs is None:
        return None
    if _is_namespace(mine):  # taken only where nothing else is a module, or merged with a namespace
        if not _is_namespace(theirs) or not _overlaps(folder / name, theirs.submodule_search_locations or []):
            return None
    elif theirs.origin and mine.origin and _same(mine.origin, theirs.origin):
        return None  # the installed module itself (an editable install run from its checkout)
    if kind == "installed" and name != "tuner" and name not in _dependency_modules():
        return None
    return kind


def _installed_spec(name: str, folder: Path) -> importlib.machinery.ModuleSpec | None:
    """What ``import name`` finds without ``folder`` on ``sys.path`` (imports nothing)."""
    path = [p for p in sys.path if not _same(p or ".", str(folder))]
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(name, path) if finder is importlib.machinery.PathFinder else find(name, None)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    return spec.submodule_search_locations is not None and spec.origin in (None, "namespace")


def _overlaps(package: Path, locations: Sequence[str]) -> bool:
    """Whether a namespace folder holds a module an installed portion of it holds too."""
    names = {n for n, _ in _candidates(package)}
    return any((Path(loc) / f"{n}.py").exists() or (Path(loc) / n).is_dir() for loc in locations for n in names)


def _same(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


@functools.lru_cache(maxsize=1)
def _dependency_modules() -> frozenset[str]:
    """The top-level modules of tuner's installed dependencies, walked from the ``tuner``
    distribution's requirements (its extras but ``dev``), with the extras each asks for."""
    from importlib import metadata

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    modules_of: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(norm(dist), set()).add(module)
    try:
        extras = set(metadata.metadata("tuner").get_all("Provides-Extra") or []) - _TUNER_EXTRAS_SKIPPED
    except metadata.PackageNotFoundError:
        return frozenset()
    out: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [("tuner", frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        dist, wanted = todo.pop()
        if (norm(dist), wanted) in seen:
            continue
        seen.add((norm(dist), wanted))
        out |= modules_of.get(norm(dist), set())
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = _requirement(text, wanted)
            if requirement is not None:
                todo.append(requirement)
    return frozenset(out)


def _requirement(text: str, extras: frozenset[str]) -> tuple[str, frozenset[str]] | None:
    """``(distribution, extras it asks for)`` of a requirement line that applies with
    ``extras`` asked for (its marker true for one of them, or for none), else None."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # without packaging: every requirement, its name alone
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        return (match.group(1), frozenset()) if match else None
    try:
        req = Requirement(text)
        applies = req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras))
    except (InvalidRequirement, Exception):
        return None
    return (req.name, frozenset(req.extras)) if applies else None
