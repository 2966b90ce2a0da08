"""No trial process outlives the command's own local Ray instance, whatever its function left
running; a function that leaves threads running is told so in its trial's ``output.txt``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tuner.ray import reaping

LINUX = pytest.mark.skipif(not reaping.supported(), reason="reads /proc")


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours is gone for every purpose
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


@LINUX
def test_the_processes_under_a_process_that_outlive_it_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{p.pid}}')\n"
            "time.sleep(120)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        grandchild = int(pids.read_text().split()[1])
        noted = reaping.processes(os.getpid())
        assert {child.pid, grandchild} <= {pid for pid, _ in noted}
        noted = [p for p in noted if p[0] in (child.pid, grandchild)]
        assert sorted(reaping.reap(noted, grace_s=0.1)) == sorted([child.pid, grandchild])
        assert _gone(grandchild)
        child.wait(timeout=10)
        assert reaping.reap(noted, grace_s=0.1) == []  # gone: nothing killed twice (a pid used again is spared)
    finally:
        child.kill()


def _write_project(folder: Path, behaviour: str) -> Path:
    folder.mkdir()
    (folder / "leaves.py").write_text(
        "import os, threading, time\n"
        "def fit(config, run):\n"
        "    with open(config['pids'], 'a') as f:\n"
        "        f.write(f'{os.getpid()} {os.getppid()}\\n')\n"
        "    if config['behaviour'] == 'interrupt':\n"
        "        raise KeyboardInterrupt\n"
        "    stop = time.time() + 600\n"
        "    threading.Thread(target=lambda: time.sleep(max(0, stop - time.time())), name='poller', daemon=False).start()\n"
        "    run.report({'score': config['x']})\n"
    )
    sweep = folder / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "name": "leaves",
                "metric": "score",
                "mode": "max",
                "function": "leaves:fit",
                "config": {"x": 0.5, "pids": str(folder.parent / "pids"), "behaviour": behaviour},
                "search": {"num_samples": 3, "parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1}}},
                "scheduler": {"name": "none"},
                "max_failures": 0,
            }
        )
    )
    return sweep


def _run(sweep: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuner", "run", str(sweep), "--storage", str(tmp_path / "runs"), "--num-cpus", "2"],
        cwd=ROOT,
        env={**os.environ, "RAY_AUTH_MODE": "token"},
        capture_output=True,
        text=True,
        timeout=600,
    )


@LINUX
def test_a_trial_that_leaves_a_thread_running_does_not_outlive_the_commands_ray_instance(tmp_path: Path) -> None:
    """Its worker process waited for the thread forever, parent 1, 200 MB each."""
    proc = _run(_write_project(tmp_path / "proj", "thread"), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]  # the trials' and their raylet's
    assert pids and all(_gone(pid) for pid in pids), pids
    outputs = list((tmp_path / "runs" / "leaves").rglob("output.txt"))
    assert outputs and all("returned with 1 thread still running (poller)" in p.read_text() for p in outputs)


def test_a_keyboard_interrupt_of_the_functions_own_is_one_error_and_stops_the_run_early(tmp_path: Path) -> None:
    """Ray made it a ``TaskCancelledError`` naming each trial's task: one line a trial, and the
    early stop of a run whose first trials all fail alike never fired."""
    proc = _run(_write_project(tmp_path / "proj", "interrupt"), tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "TaskCancelledError" not in out
    assert "the first 3 trials failed with the same error" in out, out
    assert (
        "raised KeyboardInterrupt (no Ctrl-C came) (in fit, at leaves.py:6): raise an exception to fail the trial"
        in out
    )


@LINUX
def test_an_instance_still_starting_is_known_by_rays_own_programs_among_the_drivers_children() -> None:
    """Ctrl-C or SIGTERM while ``ray.init`` starts a local instance: Ray does not know its
    processes yet, and the raylet's agents outlived the driver (parent 1). Ray's programs
    among the driver's children are found (and what is under them); another child is not."""
    import ray

    from tuner.ray import cluster

    sleeper = "import time; time.sleep(60)"
    rays = subprocess.Popen([sys.executable, "-c", sleeper, os.path.join(os.path.dirname(ray.__file__), "raylet")])
    theirs = subprocess.Popen([sys.executable, "-c", sleeper])
    try:
        found = {pid for pid, _ in cluster._started_here()}
        assert rays.pid in found and theirs.pid not in found
    finally:
        rays.kill()
        theirs.kill()


def test_by_default_what_outlives_its_instance_is_killed_without_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of such a process is waited for: the default grace is none (a stopped trial still
    computing its epoch held the end of every run for the grace)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        noted = [p for p in reaping.processes(os.getpid()) if p[0] == child.pid]
        assert noted
        slept: list[float] = []
        monkeypatch.setattr(reaping.time, "sleep", slept.append)
        assert reaping.reap(noted) == [child.pid]
        assert slept == []
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()


@LINUX
def test_a_process_itself_is_noted_as_those_under_it_are() -> None:
    assert reaping.supported()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        noted = reaping.process(child.pid)
        assert noted is not None and noted in reaping.processes(os.getpid())
        assert reaping.reap([noted]) == [child.pid]
        child.wait(timeout=10)
        assert reaping.process(child.pid) is None
    finally:
        child.kill()
        child.wait()
