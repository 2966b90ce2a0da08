"""The head of an instance of the command's own: what it leaves out (the API server, the two
monitors) and what its raylet is told instead of waiting for (its agents' ports), and that an
instance that is joined is left as it is."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tuner.ray import head

NODE_ID = "ab" * 28


class _Params:
    def __init__(self) -> None:
        self.no_monitor = False
        self.include_log_monitor = True
        self.runtime_env_agent_port = 0


class _Node:
    """What of Ray's ``Node`` the head's changes touch."""

    def __init__(self, session_dir: Path) -> None:
        self._session_dir = str(session_dir)
        self._node_id = NODE_ID
        self._ray_params = _Params()

    def _get_unused_port(self) -> int:
        return 43210

    def get_gcs_client(self) -> str:
        return "gcs"


@pytest.mark.usefixtures("ray_session")
def test_the_local_instance_runs_without_monitors_and_its_raylet_was_told_the_agents_ports() -> None:
    import ray
    from ray._private import ray_constants

    node = ray._private.worker._global_node
    assert ray_constants.PROCESS_TYPE_MONITOR not in node.all_processes
    assert ray_constants.PROCESS_TYPE_LOG_MONITOR not in node.all_processes
    assert ray_constants.PROCESS_TYPE_RAYLET in node.all_processes  # the rest of the head as Ray starts it
    for name in ("metrics_agent_port", "metrics_export_port", "dashboard_agent_listen_port"):
        assert (Path(node.get_session_dir_path()) / f"{name}_{node.node_id}").read_text().strip() == "-1"
    assert node.runtime_env_agent_port > 0


@pytest.mark.usefixtures("ray_session")
def test_the_runtime_env_agent_answers_on_the_port_it_was_given() -> None:
    """The raylet no longer waits for the agent to report a port: it was given one, and a worker
    with a runtime environment of its own is still made through it."""
    import ray

    @ray.remote(runtime_env={"env_vars": {"TUNER_HEAD_TEST": "given"}})
    def read() -> str:
        import os

        return os.environ["TUNER_HEAD_TEST"]

    assert ray.get(read.remote(), timeout=120) == "given"


def test_a_minimal_agents_ports_are_written_as_not_in_use_and_the_runtime_env_agent_given_one(tmp_path: Path) -> None:
    node = _Node(tmp_path)
    head._agent_ports_told(node, minimal=True)
    written = {p.name: p.read_text().strip() for p in tmp_path.iterdir()}
    assert written == {
        f"metrics_agent_port_{NODE_ID}": "-1",
        f"metrics_export_port_{NODE_ID}": "-1",
        f"dashboard_agent_listen_port_{NODE_ID}": "-1",
    }
    assert node._ray_params.runtime_env_agent_port == 43210


def test_a_full_dashboard_agent_reports_its_own_ports_and_a_given_runtime_env_port_stands(tmp_path: Path) -> None:
    """Where Ray's dashboard dependencies are installed the agent serves metrics on ports it
    picks: nothing is written for it, and the raylet waits for it as Ray does."""
    node = _Node(tmp_path)
    node._ray_params.runtime_env_agent_port = 50000
    head._agent_ports_told(node, minimal=False)
    assert list(tmp_path.iterdir()) == []
    assert node._ray_params.runtime_env_agent_port == 50000


def test_monitors_are_left_out_in_the_nodes_parameters(tmp_path: Path) -> None:
    node = _Node(tmp_path)
    head._monitors_left_out(node)
    assert node._ray_params.no_monitor is True and node._ray_params.include_log_monitor is False


def test_a_joined_instance_is_started_as_ray_starts_it_and_the_swaps_are_put_back() -> None:
    from ray._private import node as ray_node

    saved = {
        n: getattr(ray_node.Node, n)
        for n in ("start_api_server", "start_head_processes", "start_raylet", "start_ray_processes")
    }
    with head.started_lean("127.0.0.1:6379"):
        assert {n: getattr(ray_node.Node, n) for n in saved} == saved
    with head.started_lean(None):
        assert all(getattr(ray_node.Node, n) is not f for n, f in saved.items())
    assert {n: getattr(ray_node.Node, n) for n in saved} == saved


def test_the_swapped_starts_call_rays_own_after_their_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray._private import node as ray_node

    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        ray_node.Node, "start_head_processes", lambda self: calls.append(("head", self._ray_params.no_monitor))
    )
    monkeypatch.setattr(
        ray_node.Node,
        "start_raylet",
        lambda self, *a, **k: calls.append(("raylet", self._ray_params.runtime_env_agent_port)),
    )
    monkeypatch.setattr(ray_node.Node, "start_ray_processes", lambda self: calls.append(("processes", None)))
    monkeypatch.setattr(
        head, "_raylet_registered", lambda client, node_id, wait_s=30.0: calls.append(("registered", (client, node_id)))
    )
    node = _Node(tmp_path)
    with head.started_lean(None):
        ray_node.Node.start_head_processes(node)  # type: ignore[arg-type]
        ray_node.Node.start_raylet(node, "/dev/shm", None, 1)  # type: ignore[arg-type]
        ray_node.Node.start_ray_processes(node)  # type: ignore[arg-type]
    assert calls == [("head", True), ("raylet", 43210), ("processes", None), ("registered", ("gcs", NODE_ID))]


def test_a_head_whose_gcs_client_fails_is_left_to_rays_own_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray._private import node as ray_node

    monkeypatch.setattr(ray_node.Node, "start_ray_processes", lambda self: "started")
    node = _Node(tmp_path)

    def no_client() -> str:
        raise RuntimeError("Failed to connect to GCS")

    node.get_gcs_client = no_client  # type: ignore[method-assign]
    with head.started_lean(None):
        assert ray_node.Node.start_ray_processes(node) == "started"  # type: ignore[arg-type]


@pytest.mark.parametrize("registered", [True, False])
def test_rays_grace_sleep_after_the_raylets_start_is_skipped_once_the_raylet_is_known_registered(
    registered: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's ``Node.__init__`` sleeps 0.1 s after it starts its processes, for the raylet to
    register: skipped (once) where :func:`head._raylet_registered` saw it registered; slept
    where it could not tell. Every other sleep, and the module after the block, are Ray's own."""
    import time

    from ray._private import node as ray_node

    monkeypatch.setattr(ray_node.Node, "start_ray_processes", lambda self: "started")
    monkeypatch.setattr(head, "_raylet_registered", lambda client, node_id, wait_s=30.0: registered)
    node = _Node(tmp_path)

    def slept(seconds: float) -> float:
        start = time.monotonic()
        ray_node.time.sleep(seconds)
        return time.monotonic() - start

    with head.started_lean(None):
        assert slept(head.RAY_GRACE_S) >= 0.1  # before the processes start: Ray's own
        assert ray_node.Node.start_ray_processes(node) == "started"  # type: ignore[arg-type]
        first = slept(head.RAY_GRACE_S)
        assert (first < 0.05) if registered else (first >= 0.1)
        assert slept(head.RAY_GRACE_S) >= 0.1  # once only
        assert ray_node.time.monotonic() <= time.monotonic()  # the rest of the module is the real one
    assert ray_node.time is time


_PORT_WRITER = """
import os, sys, time
path = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
time.sleep(0.03)
with open(path + ".tmp", "w") as f:
    f.write("6543")
os.replace(path + ".tmp", path)
"""


def test_ray_looks_for_the_gcs_port_file_every_few_ms_within_the_block(tmp_path: Path) -> None:
    """The GCS's port file, written by another process 30 ms after the wait starts (Ray's
    wait holds the GIL), is found within a few ms of it (Ray's own wait looks every 100 ms);
    Ray's function is back after the block."""
    import subprocess
    import sys
    import time

    from ray._private import node as ray_node
    from ray._raylet import GCS_SERVER_PORT_NAME

    own = ray_node.wait_for_persisted_port
    path = tmp_path / f"{GCS_SERVER_PORT_NAME}_{NODE_ID}"

    def waited() -> tuple[int, float]:
        path.unlink(missing_ok=True)
        writer = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", _PORT_WRITER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "ready"
        start = time.monotonic()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        port = ray_node.wait_for_persisted_port(str(tmp_path), NODE_ID, GCS_SERVER_PORT_NAME, timeout_ms=5000)
        seconds = time.monotonic() - start
        assert writer.wait(timeout=10) == 0
        return port, seconds

    port, seconds = waited()
    assert port == 6543 and seconds >= 0.09  # Ray's steps of 100 ms: the file is seen at 0.1 s
    with head.started_lean(None):
        port, seconds = waited()
        assert port == 6543 and seconds < 0.08
    assert ray_node.wait_for_persisted_port is own


class _Gcs:
    """A GCS client whose node registers after ``misses`` asks (never: None), or that fails."""

    def __init__(self, misses: int | None, error: Exception | None = None) -> None:
        self.misses, self.error, self.asks = misses, error, []  # type: ignore[var-annotated]

    def get_all_node_info(self, timeout: float, node_selectors: list[Any], state_filter: int) -> dict[str, Any]:
        from ray.core.generated.gcs_pb2 import GcsNodeInfo

        assert state_filter == GcsNodeInfo.GcsNodeState.ALIVE and timeout <= 1
        self.asks.append(node_selectors[0].node_id.hex())
        if self.error is not None:
            raise self.error
        return {node_selectors[0].node_id: object()} if self.misses is not None and len(self.asks) > self.misses else {}


def test_the_raylet_is_waited_for_in_steps_of_ms_until_its_node_is_alive_in_the_gcs() -> None:
    import time

    gcs = _Gcs(misses=5)
    start = time.monotonic()
    assert head._raylet_registered(gcs, NODE_ID) is True
    assert gcs.asks == [NODE_ID] * 6  # this node, and only it
    assert time.monotonic() - start < 0.5  # steps of 10 ms, not Ray's second


def test_a_raylet_that_never_registers_or_a_gcs_that_fails_is_left_to_rays_own_wait() -> None:
    import time

    start = time.monotonic()
    assert head._raylet_registered(_Gcs(misses=None), NODE_ID, wait_s=0.2) is False
    assert 0.2 <= time.monotonic() - start < 1.0
    failing = _Gcs(misses=0, error=RuntimeError("GCS unavailable"))
    assert head._raylet_registered(failing, NODE_ID) is False
    assert len(failing.asks) == 1  # at once: Ray's own wait says what is wrong


@pytest.mark.usefixtures("ray_session")
def test_the_local_instance_runs_the_idle_stand_in_for_a_dashboard_agent_that_would_load_nothing() -> None:
    import ray
    from ray._private import ray_constants

    from tuner.ray import reaping

    raylet = ray._private.worker._global_node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    commands = [reaping.command(pid) for pid, _ in reaping.processes(raylet)]
    assert any("tuner/ray/idle_agent.py" in c for c in commands), commands
    assert not any("dashboard/agent.py" in c or c.startswith("ray::DashboardAgent") for c in commands), commands


RAYLET_COMMAND = ["raylet", "--dashboard_agent_command=python -u agent.py --minimal", "--runtime_env_agent_command=x"]


def test_the_raylets_agent_command_is_the_stand_in_only_where_rays_agent_would_load_nothing() -> None:
    told = head._idle_agent_command(RAYLET_COMMAND, minimal=True)
    assert told[0] == "raylet" and told[2] == "--runtime_env_agent_command=x"
    assert told[1].startswith("--dashboard_agent_command=") and told[1].endswith("idle_agent.py")
    assert " -S -E " in told[1]
    assert head._idle_agent_command(RAYLET_COMMAND, minimal=False) == RAYLET_COMMAND


@pytest.mark.parametrize("installed", [False, True])
def test_whether_rays_agent_would_load_nothing_is_rays_own_check_made_once_for_the_head(
    installed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``started_lean`` asks Ray's ``get_dashboard_dependency_error`` once, and both the ports
    written and the raylet's agent command follow its answer."""
    from ray._private import node as ray_node
    from ray._private import ray_constants, services
    from ray._private import utils as ray_utils

    asked: list[bool] = []
    monkeypatch.setattr(
        ray_utils,
        "get_dashboard_dependency_error",
        lambda: asked.append(True) or (None if installed else ImportError()),
    )
    started: list[list[str]] = []
    monkeypatch.setattr(services, "start_ray_process", lambda command, process_type, *a, **k: started.append(command))
    monkeypatch.setattr(ray_node.Node, "start_raylet", lambda self, *a, **k: None)
    node = _Node(tmp_path)
    with head.started_lean(None):
        ray_node.Node.start_raylet(node, "/dev/shm", None, 1)  # type: ignore[arg-type]
        services.start_ray_process(list(RAYLET_COMMAND), ray_constants.PROCESS_TYPE_RAYLET, True)
    assert asked == [True]
    assert (list(tmp_path.iterdir()) == []) is installed
    assert (started[0] == RAYLET_COMMAND) is installed


def test_the_stand_in_lives_while_the_raylets_pipe_is_open_and_ends_when_it_closes() -> None:
    import subprocess
    import sys

    from tuner.ray import idle_agent

    agent = subprocess.Popen([sys.executable, "-S", "-E", idle_agent.__file__], stdin=subprocess.PIPE)
    with pytest.raises(subprocess.TimeoutExpired):
        agent.wait(timeout=1.0)
    assert agent.stdin is not None
    agent.stdin.close()  # the raylet is gone
    assert agent.wait(timeout=10) == 0


def test_the_stand_in_without_a_pipe_ends_when_its_parent_does(tmp_path: Path) -> None:
    """A raylet that hands no pipe: the stand-in watches its parent (here a shell that ends)."""
    import os
    import subprocess
    import sys
    import time

    from tuner.ray import idle_agent

    pid_file = tmp_path / "pid"
    shell = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -S -E "{idle_agent.__file__}" </dev/null & echo $! > "{pid_file}"; sleep 1'],
        timeout=30,
    )
    assert shell.returncode == 0
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:  # gone, or ended and not yet reaped by the process it was handed to
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        pytest.fail("the stand-in outlived its parent")


def test_the_own_instances_system_config_turns_task_events_off_unless_the_user_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_task_events_report_interval_ms", raising=False)
    ours = {"task_events_report_interval_ms": 0}
    assert head.system_config() == ours
    monkeypatch.setenv("RAY_task_events_report_interval_ms", "1000")  # a user's own value wins
    assert head.system_config() == {}
    assert head.SYSTEM_CONFIG == ours  # left as it was


def test_the_raylet_starts_each_python_worker_through_tuners_entry_and_leaves_an_unknown_command() -> None:
    """The worker command as Ray 2.60 builds it (``services.start_raylet``): the entry takes
    the place of Ray's worker script, the rest is as it was; paths with spaces stay quoted."""
    import subprocess

    import ray

    from tuner.ray import entry

    worker = os.path.join(os.path.dirname(ray.__file__), "_private", "workers", "default_worker.py")
    assert entry.default_worker() == worker and os.path.isfile(worker)
    setup = os.path.join(os.path.dirname(worker), "setup_worker.py")
    python = "/opt/my python/bin/python"  # a path with a space
    ray_args = ["--node-ip-address=127.0.0.1", "--gcs-address=127.0.0.1:6379", "RAY_WORKER_DYNAMIC_OPTION_PLACEHOLDER"]
    command = [
        "/x/raylet",
        "--raylet_socket_name=/tmp/s",
        "--python_worker_command=" + subprocess.list2cmdline([python, setup, worker, *ray_args]),
        "--java_worker_command=",
    ]
    got = head.worker_command(command)
    assert got[:2] == command[:2] and got[3:] == command[3:]
    flag, _, value = got[2].partition("=")
    assert flag == "--python_worker_command"
    assert value == subprocess.list2cmdline([python, setup, entry.__file__, *ray_args])
    elsewhere = [*command[:2], "--python_worker_command=" + subprocess.list2cmdline([python, "/other/worker.py"])]
    assert head.worker_command(elsewhere) == elsewhere  # a Ray that starts its workers otherwise


def test_the_entry_runs_rays_worker_as_main_with_its_arguments_and_the_hook_installed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Ray's own start would run it: the raylet's arguments, Ray's worker as ``sys.argv[0]``
    and its folder first on ``sys.path``, ``__main__``; ``requests`` (which ``import ray`` brings)
    deferred; and what it exits with is the process's. A stand-in for Ray's worker script here,
    found where the entry looks for Ray's (a package ``ray`` of the test's own)."""
    import subprocess
    import sys

    from tuner.ray import entry

    workers = tmp_path / "site" / "ray" / "_private" / "workers"
    workers.mkdir(parents=True)
    (tmp_path / "site" / "ray" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (workers / "default_worker.py").write_text(
        "import json, os, sys\n"
        "import requests\n"
        "from tuner.ray import deferred\n"
        "print(json.dumps({'argv': sys.argv, 'path0': sys.path[0], 'name': __name__,\n"
        "    'entry_folder_on_path': os.path.dirname(deferred.__file__) in sys.path,\n"
        "    'requests_loaded': deferred.loaded('requests'), 'ray_imported': 'ray' in sys.modules}))\n"
        "sys.exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [sys.executable, entry.__file__, "--flag=1", "x"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout) == {
        "argv": [str(workers / "default_worker.py"), "--flag=1", "x"],
        "path0": str(workers),
        "name": "__main__",
        "entry_folder_on_path": False,  # tuner/ray's modules would shadow others of their names
        "requests_loaded": False,
        "ray_imported": False,
    }
    # tuner not importable yet (no site-packages: -S): Ray's worker runs all the same
    workers.joinpath("default_worker.py").write_text("import sys\nprint('worker', sys.argv[1:])\nsys.exit(4)\n")
    bare = subprocess.run(
        [sys.executable, "-S", entry.__file__, "--flag=1"], capture_output=True, text=True, timeout=60, env=env
    )
    assert bare.returncode == 4 and bare.stdout == "worker ['--flag=1']\n", bare.stderr
    assert "without tuner's import hook" in bare.stderr


@pytest.mark.parametrize("address", [None, "127.0.0.1:6379"])
def test_only_an_instance_of_the_commands_own_is_given_the_system_config(
    address: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ray.init`` takes a ``_system_config`` only where it starts the instance: a cluster
    that is joined keeps its own (Ray refuses one there)."""
    import ray

    from tuner.ray import cluster, joining

    given: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(cluster, "_init", lambda kwargs, address: given.append(kwargs))
    monkeypatch.setattr(joining, "token_accepted", lambda address, resolved: None)
    monkeypatch.setattr(joining, "reachable", lambda address: address)
    monkeypatch.setattr(cluster, "_kept_by_tuner_up", lambda address: None)
    monkeypatch.setattr(cluster, "_on_local_instance", False)
    monkeypatch.setattr(cluster, "_kept", None)
    monkeypatch.delenv("RAY_task_events_report_interval_ms", raising=False)
    cluster.connect(address)
    (kwargs,) = given
    if address is None:
        assert kwargs["_system_config"] == head.SYSTEM_CONFIG
    else:
        assert "_system_config" not in kwargs and kwargs["address"] == address


_IGNORES_SIGTERM = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"


def test_a_raylet_still_there_a_tenth_of_a_second_after_sigterm_is_killed() -> None:
    """Ray's shutdown waits up to a second for the raylet, which once its graceful part was done
    (10-30 ms) sometimes waited 0.25 s more on a gRPC thread of Ray's: SIGKILL after a tenth."""
    import subprocess
    import sys
    import time

    stays = subprocess.Popen([sys.executable, "-c", _IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert stays.stdout is not None and stays.stdout.readline() == "ready\n"
    began = time.monotonic()
    head._raylet_ended(stays)
    assert stays.returncode == -9 and time.monotonic() - began < 0.5  # SIGKILL, at once after the tenth
    ends = subprocess.Popen(
        [sys.executable, "-c", "import time\nprint('ready', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert ends.stdout is not None and ends.stdout.readline() == "ready\n"
    head._raylet_ended(ends)
    assert ends.returncode == -15  # it ended on SIGTERM: not killed
    head._raylet_ended(ends)  # an ended one: nothing to do


def test_within_ended_quickly_only_rays_shutdown_of_the_raylet_is_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's shutdown kills the raylet with ``check_alive=False``: that one is ended first
    (:func:`head._raylet_ended`), then Ray's own kill runs and finds it ended. Any other kill
    (the GCS, a check that it is alive) is Ray's own; outside the block, all of them are."""
    from ray._private import node as ray_node
    from ray._private import ray_constants

    ended: list[Any] = []
    own: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(head, "_raylet_ended", lambda process: ended.append(process))
    monkeypatch.setattr(ray_node.Node, "_kill_process_type", lambda self, t, **kw: own.append((t, kw)))

    class Info:
        process = "the raylet's Popen"

    class Gcs:
        process = "the GCS's Popen"

    raylet, gcs = ray_constants.PROCESS_TYPE_RAYLET, ray_constants.PROCESS_TYPE_GCS_SERVER

    class Node:
        all_processes = {raylet: [Info()], gcs: [Gcs()]}

    with head.ended_quickly():
        kill = ray_node.Node._kill_process_type
        kill(Node(), raylet, check_alive=False, allow_graceful=True, wait=False)
        assert ended == ["the raylet's Popen"] and own == [
            (raylet, {"check_alive": False, "allow_graceful": True, "wait": False})
        ]
        kill(Node(), gcs, check_alive=False, allow_graceful=True, wait=False)
        kill(Node(), raylet, check_alive=True)
        assert len(ended) == 1 and len(own) == 3
        Node.all_processes = {}  # Ray's internals moved: its own kill still runs
        kill(Node(), raylet, check_alive=False)
        assert len(own) == 4
    ray_node.Node._kill_process_type(Node(), raylet, check_alive=False)
    assert len(ended) == 1 and len(own) == 5
