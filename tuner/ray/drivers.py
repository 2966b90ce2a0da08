"""The commands running on a Ray instance: its live drivers, as its GCS records them.

``tuner down`` asks before it stops the instance ``tuner up`` keeps (:func:`running`). A run on
it would die with the instance, after Ray's 30 s drain, in a raw line of Ray's and exit 1, with
its ``run.json`` still ``running``. So a command still connected is named and the instance left
up; with ``--force`` each is interrupted first as Ctrl-C would (:func:`interrupt`: a run saves
its state, says how to resume it and exits 130), then the instance stops.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_INTERNAL = "_ray_internal"  # the namespace of Ray's own drivers (its dashboard's, its client server's)


@dataclass(frozen=True)
class Driver:
    """A live driver of an instance: a command of this machine connected to it."""

    pid: int
    command: str  # its command line, as Ray recorded it (the driver's entry point)

    def shown(self) -> str:
        """Its command line as a user typed it: ``tuner run s.yaml``, not the interpreter's
        path and ``-m``."""
        words = self.command.removeprefix("(interactive_shell) ").split()
        if words and os.path.basename(words[0]).startswith("python") and len(words) > 1:
            words = words[1:]
        if words[:1] == ["-m"] and len(words) > 1:
            words = words[1:]
        elif words:
            script = os.path.basename(words[0])
            words[0] = os.path.basename(os.path.dirname(words[0])) if script == "__main__.py" else script
        return " ".join(words) or "python"


def running(address: str, timeout: float = 10.0, clients: dict[str, Any] | None = None) -> list[Driver] | None:
    """The live drivers of the instance at ``address`` whose process still runs on this machine
    (Ray's own left out), oldest first; None when its GCS does not say (it does not answer, or
    refused this process's token). ``clients``: GCS clients by address, kept across calls (a
    caller that asks again and again makes one)."""
    from tuner.ray import auth
    from tuner.ray.instance import answers

    if not answers(address, timeout=min(timeout, 2.0)):  # Ray's client would wait 40 s on it
        return None
    clients = {} if clients is None else clients
    try:
        if address not in clients:
            clients[address] = auth.gcs_client(address)
        jobs = clients[address].get_all_job_info(
            skip_submission_job_info_field=True, skip_is_running_tasks_field=True, timeout=timeout
        )
    except Exception as e:  # an instance that does not answer is stopped all the same
        log.debug("the drivers of the Ray instance at %s: %s", address, e)
        return None
    out: list[tuple[int, Driver]] = []
    for job in jobs.values():
        if job.is_dead or job.config.ray_namespace.startswith(_INTERNAL) or not _alive(int(job.driver_pid)):
            continue
        out.append((int(job.start_time), Driver(int(job.driver_pid), str(job.entrypoint))))
    return [driver for _, driver in sorted(out, key=lambda item: item[0])]


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs here: a driver killed outright can be recorded live a while."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it runs
        return True
    return True


def interrupt(address: str, drivers: list[Driver], timeout: float = 30.0) -> list[Driver]:
    """Interrupt each of ``drivers`` of the instance at ``address`` as Ctrl-C would (SIGINT: a
    run saves its state, marks itself ``interrupted`` and exits 130), and wait until each has
    left the instance (its process ended, or its job did: a Jupyter kernel whose cell was
    interrupted stays), or ``timeout``; returns those still on it.

    A process that ignores SIGINT (a command started in the background of a script, whose
    shell set it so) is sent SIGTERM instead when it is one of tuner's commands, which take
    SIGTERM as Ctrl-C (:mod:`tuner.signals`); any other is not waited for."""
    sent = []
    for driver in drivers:
        sig = signal.SIGINT
        if _ignores_ctrl_c(driver.pid):
            if not driver.shown().startswith("tuner "):
                continue
            sig = signal.SIGTERM
        try:
            os.kill(driver.pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
        sent.append(driver.pid)
    deadline = time.monotonic() + timeout
    clients: dict[str, Any] = {}  # one GCS client for every poll
    while True:
        live = {d.pid for d in running(address, clients=clients) or []}
        if not live.intersection(sent) or time.monotonic() > deadline:
            return [d for d in drivers if d.pid in live]
        time.sleep(0.2)


def _ignores_ctrl_c(pid: int) -> bool:
    """Whether process ``pid`` ignores SIGINT (Linux's /proc; False where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
