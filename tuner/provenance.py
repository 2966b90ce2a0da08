"""Where a run came from: versions, the git commit of the sweep file, the command line."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def versions() -> dict[str, str]:
    """Versions of python, torch, ray, numpy and tuner (read from the installed packages'
    metadata: nothing is imported for it)."""
    from importlib.metadata import PackageNotFoundError, version

    from tuner import __version__

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown"

    return {
        "python": platform.python_version(),
        "torch": of("torch"),
        "ray": of("ray"),
        "numpy": of("numpy"),
        "tuner": str(__version__),
    }


def git_commit(path: str | Path) -> str | None:
    """The commit of the git repository holding ``path`` (None outside one), ``+dirty`` when
    the file has uncommitted changes."""
    try:
        folder = Path(path).resolve().parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(Path(path).resolve())],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
