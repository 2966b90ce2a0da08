#!/usr/bin/env python3
"""Set up tuner from nothing but Python and pip.

    python3 scripts/bootstrap.py          # .venv with tuner and its dependencies
    python3 scripts/bootstrap.py --dev    # the same, plus the test tools

Creates ``.venv`` beside this repository (or ``$TUNER_VENV``), installs PyTorch first --
the CPU build on a machine without an NVIDIA GPU, so pip never pulls the multi-GB CUDA
build there -- then installs this project in editable mode. Running it again is cheap:
what is already installed is kept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The CPU build pinned on machines without a GPU (the release this project is tested on).
TORCH_CPU_VERSION = "2.13.0"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _resolves(url: str) -> bool:
    host = url.split("/")[2]
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _pip(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _importable(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--venv", default=os.environ.get("TUNER_VENV", str(ROOT / ".venv")))
    args = parser.parse_args()

    env_dir = Path(args.venv)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        print(f"+ creating {env_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(env_dir)

    if not _importable(python, "torch"):
        if _has_nvidia_gpu():
            _pip(python, "torch")  # PyPI's default Linux build carries CUDA
        else:
            extra = ["--extra-index-url", TORCH_CPU_INDEX] if _resolves(TORCH_CPU_INDEX) else []
            _pip(python, f"torch=={TORCH_CPU_VERSION}", *extra)

    target = f"{ROOT}[dev]" if args.dev else str(ROOT)
    marker = env_dir / (".tuner-dev" if args.dev else ".tuner")
    stamp = (ROOT / "pyproject.toml").stat().st_mtime_ns
    if not marker.exists() or marker.read_text() != str(stamp) or not _importable(python, "tuner"):
        _pip(python, "-q", "-e", target)
        marker.write_text(str(stamp))
    print(f"ready: {env_dir} (tuner at {env_dir / 'bin' / 'tuner'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
