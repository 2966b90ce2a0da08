"""No trial process outlives the local Ray instance that started it.

A trial worker whose function left a non-daemon thread running never ends: when Ray stops it,
Python's exit waits for that thread, and once the raylet is gone nobody kills the process
(probe: two 200 MB ``ray::run_trial`` processes, parent 1, still there 25 minutes after the
run). :func:`processes` notes the processes under a raylet before its instance is shut down,
:func:`reap` SIGKILLs those still alive right after: their instance is gone, and nothing of
theirs is waited for (a trial's results and checkpoints are written by then). Linux only (it
reads ``/proc``); elsewhere nothing is done.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

Process = tuple[int, str]  # (pid, its start time in /proc/PID/stat: a pid used again is another process)


def _stat(pid: int) -> tuple[int, str] | None:
    """``(parent pid, start time)`` of ``pid``, or None when it is gone (or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def command(pid: int) -> str:
    """The command line of ``pid`` (its arguments joined by spaces; empty when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def processes(root: int, only: Callable[[int], bool] | None = None) -> list[Process]:
    """Every process under ``root`` (its children, theirs, ...), not ``root`` itself; with
    ``only``, under those of its children it holds true for (and those children)."""
    children: dict[int, list[Process]] = {}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        info = _stat(pid)
        if info is not None:
            children.setdefault(info[0], []).append((pid, info[1]))
    out: list[Process] = []
    todo = [root]
    while todo:
        parent = todo.pop()
        for child in children.get(parent, []):
            if child not in out and (only is None or parent != root or only(child[0])):
                out.append(child)
                todo.append(child[0])
    return out


def supported() -> bool:
    """Whether processes can be noted and reaped here (Linux's /proc)."""
    return Path("/proc/self/stat").exists()


def process(pid: int) -> Process | None:
    """``pid`` itself, noted as :func:`processes` notes those under a process (None: gone)."""
    info = _stat(pid)
    return None if info is None else (pid, info[1])


def alive(noted: list[Process]) -> list[Process]:
    """Those of ``noted`` still running (the same process: its start time unchanged)."""
    return [(pid, start) for pid, start in noted if (info := _stat(pid)) is not None and info[1] == start]


def reap(noted: list[Process], grace_s: float = 0.0) -> list[int]:
    """SIGKILL what of ``noted`` is still alive (after ``grace_s``); returns their pids. At once
    by default: at the end of every quickstart the process of a trial that ASHA had stopped was
    still computing its epoch after Ray's shutdown, and a grace of half a second, then a tenth,
    was paid for it at the end of every such run (BENCHMARKS.md i)."""
    deadline = time.monotonic() + grace_s
    left = alive(noted)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = alive(left)
    killed = []
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        except OSError:
            pass
    return killed
