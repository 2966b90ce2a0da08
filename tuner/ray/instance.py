"""A local Ray instance kept up between commands: ``tuner up``, ``tuner down``.

Each ``tuner run`` without ``--address`` starts a Ray instance of its own and stops it at the
end; on the instance ``tuner up`` keeps, a run ends sooner (by how much: docs/cluster.md,
BENCHMARKS.md i). ``tuner up`` starts one
instance that stays (a ``ray start --head --block`` process of its own session, addressed as
127.0.0.1, token authentication on: like a local ``ray.init``'s, its ports take connections on
every interface, and a driver without the token is refused) and records it in
``$TUNER_CACHE/ray-instance.json``; every later command without ``--address`` joins it
instead of starting one, until ``tuner down`` stops it.

Only an instance tuner itself started is joined this way: the record names its process, its
GCS port, the host, the Python environment and the Ray version. A record of an instance that
is gone (the machine restarted, the process was killed) is removed; one started from another
environment or Ray version is left alone (``tuner down`` stops it); either way the command
starts its own instance as before. A cluster some other ``ray start`` left is never joined
without ``--address``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tuner.errors import InputError, RunError, warn_stderr

log = logging.getLogger(__name__)

RECORD = "ray-instance.json"
_wait = time.sleep  # between looks at Ray's start (a test interrupts it here)
_ADDRESS = re.compile(r"127\.0\.0\.1:\d{1,5}")


@dataclass(frozen=True)
class Instance:
    """A local Ray instance ``tuner up`` started: what its record holds."""

    address: str  # its GCS, 127.0.0.1:PORT
    pid: int  # the ``ray start --block`` process, leader of its own process group
    host: str
    python: str  # the Python environment that started it (sys.prefix: a venv's python and python3 alike)
    ray: str
    started: float  # time.time()
    log: str  # what ``ray start`` printed


def record_path() -> Path:
    """Where the record of the instance kept up lives (``$TUNER_CACHE`` or ``~/.cache/tuner``)."""
    from tuner.models.sources import cache_dir

    return cache_dir() / RECORD


def _ray_version() -> str:
    from importlib.metadata import version

    return version("ray")


def _read(path: Path) -> Instance | None:
    """The record at ``path``, or None when there is none or it is not one (any other file
    there is ignored, never trusted)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        inst = Instance(
            address=str(raw["address"]),
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            python=str(raw["python"]),
            ray=str(raw["ray"]),
            started=float(raw["started"]),
            log=str(raw["log"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError, OverflowError) as e:
        log.debug("%s is not a record of a Ray instance: %s", path, e)  # OverflowError: "pid": Infinity
        return None
    if not _ADDRESS.fullmatch(inst.address) or inst.pid <= 1:
        log.debug("%s: not a record of a local Ray instance (%r, pid %d)", path, inst.address, inst.pid)
        return None
    return inst


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running ``ray start`` process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process took the number
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: the number may have been reused by another program
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            return b"start" in args and b"--block" in args and any(b"ray" in a for a in args)
        return False
    return True


# An HTTP/2 client's opening: the connection preface, then an empty SETTINGS frame (RFC 9113 3.4)
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_H2_SETTINGS = 4  # a frame's type, its fourth byte


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether a gRPC server answers at ``HOST:PORT`` within ``timeout`` seconds: the HTTP/2
    handshake, which needs no token (the server's first frame is its SETTINGS). A port that
    only accepts connections (a GCS whose process is stopped, or not Ray's at all) does not
    answer; Ray's own client would wait 40 s on it, and ``ray.init`` longer.

    Read on a plain socket: a gRPC channel answers as soon, but closing it waits for its
    connectivity poll (0.2 s a channel), and a command that joins ``tuner up``'s instance asks
    up to three times before its first trial."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            conn.sendall(_H2_PREFACE)
            header = b""
            while len(header) < 9:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                conn.settimeout(left)
                chunk = conn.recv(9 - len(header))
                if not chunk:  # closed on us: not an HTTP/2 server
                    return False
                header += chunk
    except (OSError, ValueError):  # refused, unreachable, timed out, or not HOST:PORT
        return False
    return header[3] == _H2_SETTINGS


def running() -> Instance | None:
    """The instance ``tuner up`` started, when it is up and this process can join it (the
    same host, Python and Ray); a record of one that is gone is removed."""
    path = record_path()
    inst = _read(path)
    if inst is None:
        return None
    if inst.host != socket.gethostname():  # a home folder shared between machines
        return None
    if inst.python != sys.prefix or inst.ray != _ray_version():
        log.info(
            "the Ray instance at %s was started by %s with Ray %s: not joined", inst.address, inst.python, inst.ray
        )
        return None
    if not _alive(inst.pid):
        _reap(inst.pid)
        _kill_leftovers(inst.pid)  # its `ray start` was killed: what of Ray outlived it
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    if not answers(inst.address):  # up but not answering (stopped?): not joined, kept for tuner down
        warn_stderr(
            f"the Ray instance tuner up started does not answer at {inst.address}: this command starts one of "
            "its own (tuner down stops that one)"
        )
        return None
    return inst


def _reap(pid: int) -> None:
    """Reap ``pid`` if this process started it (the Python API): no zombie that looks alive."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _kill_leftovers(pgid: int) -> None:
    """SIGKILL the Ray processes left in a dead instance's process group (the agents the
    raylet started outlive a killed ``ray start``). Linux: read from /proc; elsewhere nothing."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) != pgid:  # the process group, after the state and the parent
                continue
            if b"ray" not in (stat.parent / "cmdline").read_bytes():
                continue
            os.kill(int(stat.parent.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            continue


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(num_cpus: int | None = None, num_gpus: int | None = None, timeout: float = 120.0) -> tuple[Instance, bool]:
    """Start a local Ray instance that stays up, or find the one already up; returns it and
    whether it was started now.

    Raises:
        InputError: ``RAY_AUTH_MODE=disabled`` is set.
        RunError: Ray did not start (the last lines of its output say why).
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise InputError("RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on; unset it")
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:  # one `tuner up` at a time: a second started meanwhile waits, then finds the first's instance
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _start(path, num_cpus, num_gpus, timeout)
    finally:
        os.close(fd)


def _start(path: Path, num_cpus: int | None, num_gpus: int | None, timeout: float) -> tuple[Instance, bool]:
    from tuner.files import write_json
    from tuner.ray import auth, prestart, settings

    inst = running()
    if inst is not None:
        return inst, False
    other = _read(path)
    if other is not None and other.host == socket.gethostname() and _alive(other.pid):
        if other.python != sys.prefix or other.ray != _ray_version():
            what = f"a Ray instance of another environment ({other.python}, Ray {other.ray}) is up"
        else:
            what = "the Ray instance tuner up started does not answer"
        raise InputError(f"{what} at {other.address}: stop it with tuner down first")
    auth.ensure_token()  # the instance and every command that joins it read it
    path.parent.mkdir(parents=True, exist_ok=True)
    logfile = path.with_suffix(".log")
    port = _free_port()
    args = [
        sys.executable,  # `ray` of this Python, wherever pip put its script
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        f"--dashboard-port={_free_port()}",
        f"--ray-client-server-port={_free_port()}",  # it must have one
        "--disable-usage-stats",
        "--block",
    ]
    if num_cpus is not None:
        args.append(f"--num-cpus={num_cpus}")
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    env = dict(os.environ)
    env.update(settings.defaults(env))
    env.setdefault("RAY_preload_python_modules", prestart.WARM_MODULE)  # its workers start warm
    env.pop("RAY_ADDRESS", None)
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    try:
        while "Ray runtime started" not in logfile.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = [line for line in logfile.read_text(errors="replace").splitlines() if line.strip()][-3:]
                raise RunError(
                    "Ray did not start"
                    + (f" (exit status {proc.returncode})" if proc.returncode is not None else f" in {timeout:.0f} s"),
                    details=[*tail, f"its output: {logfile}"],
                )
            _wait(0.1)
    except BaseException:  # failed, timed out or Ctrl-C: no instance is left up without its record
        _stop_group(proc.pid)
        raise
    inst = Instance(
        address=f"127.0.0.1:{port}",
        pid=proc.pid,
        host=socket.gethostname(),
        python=sys.prefix,
        ray=_ray_version(),
        started=time.time(),
        log=str(logfile),
    )
    write_json(path, asdict(inst))
    prestart.keep_warm(inst.address, inst.pid, int(resources(inst.address).get("CPU", 0)))  # for the first run
    return inst, True


def resources(address: str) -> dict[str, float]:
    """The instance's CPUs and GPUs as its node registered them (empty if the GCS does not say)."""
    try:
        from tuner.ray import auth

        nodes = auth.gcs_client(address).get_all_node_info(timeout=10).values()
        total: dict[str, float] = {}
        for node in nodes:
            for key, value in node.resources_total.items():
                if key in ("CPU", "GPU"):
                    total[key] = total.get(key, 0.0) + float(value)
        return total
    except Exception as e:  # only for the message: the instance is up either way
        log.debug("resources of the Ray instance at %s: %s", address, e)
        return {}


def stop(timeout: float = 30.0) -> Instance | None:
    """Stop the instance ``tuner up`` started (SIGTERM to its ``ray start`` process, which stops
    every process of the instance; SIGKILL to its process group if it lingers) and forget it;
    returns it, or None when none was up."""
    path = record_path()
    inst = _read(path)
    if inst is None or inst.host != socket.gethostname():
        return None
    if _alive(inst.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(inst.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(inst.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _stop_group(inst.pid)
    else:
        _kill_leftovers(inst.pid)
    with contextlib.suppress(OSError):
        path.unlink()
    return inst


def _stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL to what is left of a process group; returns once it is gone (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
