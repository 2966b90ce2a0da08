"""The user's folder Ray ships (``working_dir``): an entry Ray's packaging would wait on without
end (a named pipe, a device) is refused in one line before Ray starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tuner.errors import InputError
from tuner.ray import shipping
from tuner.usercode import SHIP_EXCLUDES


def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "pkg" / "sub").mkdir(parents=True)
    (folder / "train.py").write_text("def fit(config, run):\n    run.report({'score': 1.0})\n")
    (folder / "pkg" / "sub" / "data.csv").write_text("x\n1\n")
    return folder


def env(folder: Path) -> dict[str, object]:
    return {"working_dir": str(folder), "excludes": list(SHIP_EXCLUDES)}


def test_a_named_pipe_anywhere_in_the_shipped_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = project(tmp_path)
    shipping.check(env(folder))  # a plain project: nothing said
    os.mkfifo(folder / "pkg" / "sub" / "pipe")
    with pytest.raises(InputError) as e:
        shipping.check(env(folder))
    assert e.value.problems == [
        f"{folder}/pkg/sub/pipe: a named pipe (FIFO) in {folder}, the folder of the sweep's code that Ray ships "
        "to every node: Ray would wait on it without end; move it out, or list it in that folder's .rayignore"
    ]
    link = folder / "to-pipe"  # a link to one: Ray's packaging opens what it points at
    (folder / "pkg" / "sub" / "pipe").rename(tmp_path / "pipe")
    link.symlink_to(tmp_path / "pipe")
    with pytest.raises(InputError, match="to-pipe: a named pipe"):
        shipping.check(env(folder))


@pytest.mark.parametrize("where", ["runs/x/pipe", ".git/pipe", "pkg/__pycache__/pipe", "ignored/pipe", "rayignored"])
def test_what_ray_leaves_out_of_the_folder_may_hold_anything(tmp_path: Path, where: str) -> None:
    folder = project(tmp_path)
    (folder / ".gitignore").write_text("ignored/\n")
    (folder / ".rayignore").write_text("rayignored\n")
    path = folder / where
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    shipping.check(env(folder))


def test_a_socket_or_a_dangling_link_is_passed_over_as_ray_passes_it_over(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "dangling").symlink_to(tmp_path / "nothing")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(folder / "sock"))
        shipping.check(env(folder))
    finally:
        server.close()


def test_a_named_pipe_in_a_py_modules_folder_is_refused_too(tmp_path: Path) -> None:
    folder = project(tmp_path)
    os.mkfifo(folder / "pkg" / "pipe")
    with pytest.raises(InputError, match="pkg/pipe: a named pipe"):
        shipping.check({"py_modules": [str(folder / "pkg")]})


def test_tuner_run_with_a_named_pipe_beside_the_function_exits_2_before_ray_starts(tmp_path: Path) -> None:
    """It hung without end (local instance and --address alike): Ray's packaging opened the pipe."""
    folder = project(tmp_path)
    os.mkfifo(folder / "pkg" / "sub" / "pipe")
    sweep = folder / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "pipe",
                "metric": "score",
                "mode": "max",
                "function": "train:fit",
                "config": {"epochs": 1, "x": 0.5},
                "search": {"num_samples": 1, "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}}},
                "scheduler": {"name": "none"},
            }
        )
    )
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(sweep), "--storage", str(tmp_path / "runs"), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{folder}/pkg/sub/pipe: a named pipe (FIFO)" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 60
