"""A real multi-node Ray cluster on this machine, for tests: ``ray start`` processes.

    with LocalCluster(workers=2) as c:
        subprocess.run(["tuner", "run", sweep, "--address", c.address], env=c.env())

The head and each worker is one ``ray start --block`` process in its own session (process
group), started with token authentication on (``RAY_AUTH_MODE=token``) and a token made for
this cluster alone (``RAY_AUTH_TOKEN``). Everything lives under a private temp dir (one Ray temp dir
per node: nodes of one machine starting at once in one temp dir race for the same socket
names), so the cluster never touches ``/tmp/ray`` (where ``--address auto`` and ``ray stop``
of other users look) and every process it spawned can be found by that path.

Teardown never uses ``ray stop``: that stops every Ray process of the user on the machine,
the test session's own local instance included. It signals the process groups it started
(SIGTERM, then SIGKILL), then kills any process whose command line names the cluster's
temp dir (a Ray worker that left the group).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Node:
    """One ``ray start --block`` process (the leader of its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """Stop this node: ``sig`` to its process group, SIGKILL if it lingers."""
        if self.proc.poll() is None:
            _killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        _killpg(self.proc.pid, signal.SIGKILL)  # whatever of the group is left
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class LocalCluster:
    """A head and ``workers`` worker nodes, ``cpus`` CPUs each, on this machine."""

    workers: int = 2
    cpus: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    root: Path = field(init=False)
    token: str = field(init=False)
    port: int = field(init=False)
    client_port: int = field(init=False)
    nodes: list[Node] = field(default_factory=list, init=False)
    last_error: str = field(default="", init=False)

    def __post_init__(self) -> None:
        # Short path: Ray's Unix sockets live under it and a socket path is limited to 107 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="tc-", dir="/tmp"))
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.client_port = free_port()

    @property
    def address(self) -> str:
        """The GCS address a driver or worker joins (``HOST:PORT``)."""
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        """The Ray Client address (``ray://HOST:PORT``)."""
        return f"ray://127.0.0.1:{self.client_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a node or a driver of this cluster: token auth on, this
        cluster's token, no address inherited, the repository importable."""
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
        env.update(
            {
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": self.token,
                "PYTHONPATH": str(ROOT),
                "RAY_USAGE_STATS_ENABLED": "0",
                **self.extra_env,
                **extra,
            }
        )
        return env

    def _start(self, name: str, args: list[str]) -> Node:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    RAY,
                    "start",
                    *args,
                    f"--num-cpus={self.cpus}",
                    "--num-gpus=0",
                    "--disable-usage-stats",
                    f"--temp-dir={self.root / ('ray-' + name)}",
                    "--block",
                ],
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        node = Node(name, proc, log)
        self.nodes.append(node)
        return node

    def start(self, timeout: float = 120.0) -> LocalCluster:
        """Start the head, then the workers; return once every node has joined."""
        try:
            self._start(
                "head",
                [
                    "--head",
                    f"--port={self.port}",
                    "--include-dashboard=false",
                    f"--dashboard-port={free_port()}",
                    f"--ray-client-server-port={self.client_port}",
                ],
            )
            self._wait_started(self.nodes[0], timeout)
            for _ in range(self.workers):
                self.add_worker(timeout=timeout, wait=False)
            self.wait_nodes(1 + self.workers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, timeout: float = 120.0, wait: bool = True) -> Node:
        """Start one more worker node (and wait until it has joined)."""
        before = len(self.alive_nodes()) if wait else 0
        node = self._start(f"worker{len(self.nodes)}", [f"--address={self.address}"])
        if wait:
            self.wait_nodes(before + 1, timeout)
        return node

    def _wait_started(self, node: Node, timeout: float) -> None:
        def started() -> bool:
            if not node.alive:
                raise RuntimeError(f"ray start ({node.name}) exited:\n{node.log.read_text(errors='replace')[-3000:]}")
            return "Ray runtime started" in node.log.read_text(errors="replace")

        wait_for(started, timeout, f"the {node.name} node to start")

    def alive_nodes(self) -> list[dict[str, Any]]:
        """The cluster's live nodes as the GCS reports them (asked from a subprocess, so the
        test process never connects to this cluster)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, log_to_driver=False, logging_level='ERROR');"
            "print(json.dumps([{'id': n['NodeID'], 'cpu': n['Resources'].get('CPU', 0)} "
            "for n in ray.nodes() if n['Alive']]))"
        )
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            self.last_error = out.stderr[-2000:]
            return []
        return json.loads(out.stdout.strip().splitlines()[-1])

    def wait_nodes(self, n: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait until exactly ``n`` nodes are alive; return them."""
        seen: list[Any] = []

        def ready() -> list[dict[str, Any]] | None:
            nodes = self.alive_nodes()
            seen[:] = [len(nodes)]
            return nodes if len(nodes) == n else None

        try:
            return wait_for(ready, timeout, f"{n} live nodes", every=1.0)
        except TimeoutError as e:
            logs = "\n".join(
                f"--- {node.name} (alive: {node.alive}):\n" + node.log.read_text(errors="replace")[-1500:]
                for node in self.nodes
            )
            raise TimeoutError(f"{e}; last count: {seen}; last error: {self.last_error}\n{logs}") from None

    def logs(self, pattern: str, chars: int = 3000) -> str:
        """The ends of the nodes' Ray log files matching ``pattern`` (for failure messages)."""
        out = []
        for f in sorted(self.root.glob(f"ray-*/session_latest/logs/{pattern}")):
            text = f.read_text(errors="replace")[-chars:]
            if text.strip():
                out.append(f"--- {f.relative_to(self.root)}:\n{text}")
        return "\n".join(out)

    def processes(self) -> list[int]:
        """PIDs of every process of this cluster: in the process group of one of its nodes, or
        naming its temp dir on the command line (Ray workers rename themselves ``ray::...``,
        so the group is what finds them)."""
        marker = str(self.root).encode()
        groups = {n.proc.pid for n in self.nodes}
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            try:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # dead already, waiting to be reaped
                if os.getpgid(pid) in groups or marker in (entry / "cmdline").read_bytes():
                    pids.append(pid)
            except OSError:
                continue
        return pids

    def node_of(self, node_id: str) -> Node | None:
        """The node whose raylet has Ray node id ``node_id`` (its ``--node_id=`` flag)."""
        flag = f"--node_id={node_id}".encode()
        by_group = {n.proc.pid: n for n in self.nodes}
        for pid in self.processes():
            try:
                if flag in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return by_group.get(os.getpgid(pid))
            except OSError:
                continue
        return None

    def stop(self) -> None:
        """Stop every node (workers first), then any straggler of this cluster; remove its files."""
        for node in reversed(self.nodes):
            node.stop()
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
