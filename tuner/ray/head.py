"""What the head of a local instance of the command's own starts, and what it leaves out
(:func:`tuner.ray.cluster.connect` starts it through ``ray.init``, within :func:`started_lean`)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

# Ray's settings for an instance of the command's own (``ray.init``'s ``_system_config``):
#
# - No task events. Every Ray process (the driver, each trial's) buffers an event for each
#   state a task or actor goes through and sends them to the GCS every second, for Ray's
#   dashboard and state API (``ray list tasks``, ``ray timeline``), which need the dashboard's
#   API server: an instance of the command's own starts none (:func:`started_lean`), so nothing
#   can read them. And the driver's shutdown waited 0.25 s to flush its last ones, at the end of
#   every run (BENCHMARKS.md i).
SYSTEM_CONFIG: dict[str, Any] = {
    "task_events_report_interval_ms": 0,
}


def system_config() -> dict[str, Any]:
    """:data:`SYSTEM_CONFIG`, less what the user set in the environment (``RAY_<name>``): a
    user's own value wins, as for :mod:`tuner.ray.settings`."""
    return {k: v for k, v in SYSTEM_CONFIG.items() if f"RAY_{k}" not in os.environ}


@contextlib.contextmanager
def started_lean(address: str | None) -> Iterator[None]:
    """A local instance of the command's own (``address`` None) starts without what it does not
    need and without waiting on what it does not need yet; an instance that is joined keeps
    whatever it runs. Within the block, ``ray.init`` starts the head with:

    - no API server (the dashboard's head in its minimal form: Ray's job submission and state
      REST API, which nothing uses on an instance that lives for one command). ``ray.init``
      starts it even with no dashboard and waits for it to register, about 1 s of a 2-core
      laptop's start, and it then takes CPU from the trials. No port of it is opened.
    - no autoscaler monitor and no log monitor (:func:`_monitors_left_out`);
    - a raylet that does not wait for its two agents' ports (:func:`_agent_ports_told`), and
      that starts a stand-in (:mod:`tuner.ray.idle_agent`) for a dashboard agent that would
      load no module (:func:`_idle_agent_command`);
    - workers that defer what Ray and Ray Tune import and a trial never uses (``requests``,
      ``jsonschema``, pandas, Ray Data: ~0.5 s of CPU a trial process) to their first use: the
      raylet starts each through :mod:`tuner.ray.entry` (:func:`worker_command`);
    - ``ray.init`` asking for the raylet's node once it has registered, not a second after a
      first ask that came too soon (:func:`_raylet_registered`), and without Ray's tenth of a
      second of grace for a raylet already registered (:class:`_GraceSkipped`);
    - ``ray.init`` looking for the GCS's port file every :data:`PORT_POLL_MS`, not every 0.1 s:
      the GCS writes it 35-50 ms after its start on a 2-core laptop, and Ray found it at 0.1 s.

    Measured in BENCHMARKS.md i."""
    if address is not None:
        yield
        return
    from ray._private import node as ray_node
    from ray._private import ray_constants, services
    from ray._private import utils as ray_utils

    from tuner.ray.tune_patches import swapped

    # the dashboard agent starts --minimal (and loads no module) without its dependencies
    minimal = ray_utils.get_dashboard_dependency_error() is not None

    start_head, start_raylet = ray_node.Node.start_head_processes, ray_node.Node.start_raylet
    start_processes = ray_node.Node.start_ray_processes
    start_process = services.start_ray_process

    def process_started(command: list[str], process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == ray_constants.PROCESS_TYPE_RAYLET:
            command = worker_command(_idle_agent_command(command, minimal))
        return start_process(command, process_type, *args, **kwargs)

    def head_without_monitors(self: Any) -> Any:
        _monitors_left_out(self)
        return start_head(self)

    def raylet_told_ports(self: Any, *args: Any, **kwargs: Any) -> Any:
        _agent_ports_told(self, minimal)
        return start_raylet(self, *args, **kwargs)

    grace = _GraceSkipped(ray_node.time)
    wait_for_port = ray_node.wait_for_persisted_port

    def port_polled(*args: Any, **kwargs: Any) -> int:
        kwargs.setdefault("poll_interval_ms", PORT_POLL_MS)
        return wait_for_port(*args, **kwargs)

    def processes_registered(self: Any) -> Any:
        started = start_processes(self)
        with contextlib.suppress(Exception):  # no GCS client: Ray's own wait says what is wrong
            grace.armed = _raylet_registered(self.get_gcs_client(), self._node_id)
        return started

    with (
        swapped(ray_node, "time", grace),
        swapped(ray_node, "wait_for_persisted_port", port_polled),
        swapped(ray_node.Node, "start_api_server", lambda self, **kwargs: None),
        swapped(ray_node.Node, "start_ray_processes", processes_registered),
        swapped(ray_node.Node, "start_head_processes", head_without_monitors),
        swapped(ray_node.Node, "start_raylet", raylet_told_ports),
        swapped(services, "start_ray_process", process_started),
    ):
        yield


def _monitors_left_out(node: Any) -> None:
    """Leave out two Python processes that each import for ~0.7 s of CPU beside the trials'
    first processes, and do nothing on an instance of the command's own:

    - the autoscaler's monitor: the instance is one machine that never grows, and its idle
      monitor is what held Ray's shutdown for a second (:func:`tuner.ray.cluster.disconnect`);
    - the log monitor, which sends the workers' output to the drivers that ask for it: tuner's
      driver does not (``log_to_driver=False``; a trial's output is in its ``output.txt``).
      Ray's own messages to the driver (a worker that died, the raylet's errors) come through
      the GCS, not through it."""
    node._ray_params.no_monitor = True
    node._ray_params.include_log_monitor = False


def _agent_ports_told(node: Any, minimal: bool) -> None:
    """Before the raylet starts, tell it the ports it would otherwise wait for its agents to
    report (Ray's ``WaitForDashboardAgentPorts`` and ``WaitForRuntimeEnvAgentPort``, files in
    the session folder): each agent is a Python process that imports for ~0.8 s of CPU before it
    reports, and ``ray.init`` waited for the slower of them, 1-1.5 s of a 2-core laptop's start.

    - A ``minimal`` dashboard agent reports its three ports as not in use (-1) once it has loaded;
      those files are written now with the same values. Where Ray's dashboard dependencies are
      installed, the agent serves metrics on ports it picks, and the raylet waits for it as Ray
      does.
    - The runtime environment agent is given its port (an unused one, picked as Ray picks its
      GCS's), so the raylet need not wait for it to bind one. The raylet asks it for nothing
      until a worker needs a runtime environment, and then waits for it to answer.

    The agents start as before, beside the first trials' processes."""
    from ray._raylet import (
        DASHBOARD_AGENT_LISTEN_PORT_NAME,
        METRICS_AGENT_PORT_NAME,
        METRICS_EXPORT_PORT_NAME,
        persist_port,
    )

    if minimal:
        for name in (METRICS_AGENT_PORT_NAME, METRICS_EXPORT_PORT_NAME, DASHBOARD_AGENT_LISTEN_PORT_NAME):
            persist_port(node._session_dir, node._node_id, name, -1)
    if not node._ray_params.runtime_env_agent_port:
        node._ray_params.runtime_env_agent_port = node._get_unused_port()


def _idle_agent_command(raylet_command: list[str], minimal: bool) -> list[str]:
    """The raylet's command with :mod:`tuner.ray.idle_agent` as its dashboard agent, where Ray's
    agent would start ``minimal`` (its dashboard's dependencies not installed) and so load no
    module; as it is otherwise. The agent's ports are written before (:func:`_agent_ports_told`)."""
    import subprocess
    import sys

    from tuner.ray import idle_agent

    if not minimal:
        return raylet_command
    flag = "--dashboard_agent_command="
    stand_in = flag + subprocess.list2cmdline([sys.executable, "-S", "-E", idle_agent.__file__])
    return [stand_in if arg.startswith(flag) else arg for arg in raylet_command]


def worker_command(raylet_command: list[str]) -> list[str]:
    """The raylet's command with each Python worker started through :mod:`tuner.ray.entry` in
    the place of Ray's ``default_worker.py``: it installs tuner's import hook before Ray's worker
    imports ``ray``, then runs Ray's. Where the command names no ``default_worker.py`` of this
    Ray (a Ray that starts its workers otherwise), it is left as it is, and the workers import
    everything as Ray's own do."""
    import subprocess

    from tuner.ray import entry

    flag = "--python_worker_command="
    theirs, ours = (f" {subprocess.list2cmdline([path])} " for path in (entry.default_worker(), entry.__file__))
    return [arg.replace(theirs, ours, 1) if arg.startswith(flag) and theirs in arg else arg for arg in raylet_command]


REGISTER_WAIT_S = 30.0  # as long as Ray waits for its raylet (Node.__init__'s raylet_start_wait_time_s)
_REGISTER_POLL_S = 0.01


def _raylet_registered(gcs_client: Any, node_id: str, wait_s: float = REGISTER_WAIT_S) -> bool:
    """Wait, in steps of 10 ms, until the GCS knows the raylet just started as alive; whether it
    does. ``ray.init`` then asks for that node once, 0.1 s after the raylet's start, through a
    call that, when the raylet has not registered yet, sleeps a whole second before it asks
    again (its "Retrying to get node with node ID"): 1 s added to one command start in three
    on a 2-core laptop (BENCHMARKS.md i). Where this cannot tell (an error of the GCS client),
    Ray's own wait takes over."""
    import time

    from ray._raylet import NodeID
    from ray.core.generated.gcs_pb2 import GcsNodeInfo
    from ray.core.generated.gcs_service_pb2 import GetAllNodeInfoRequest

    selector = GetAllNodeInfoRequest.NodeSelector(node_id=NodeID.from_hex(node_id).binary())
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if gcs_client.get_all_node_info(
                timeout=1, node_selectors=[selector], state_filter=GcsNodeInfo.GcsNodeState.ALIVE
            ):
                return True
        except Exception:  # Ray's own wait reports what is wrong
            return False
        time.sleep(_REGISTER_POLL_S)
    return False


PORT_POLL_MS = 5  # how often ray.init looks for the GCS's port file (Ray's own: every 100 ms)
RAY_GRACE_S = 0.1  # what Ray's Node.__init__ sleeps after starting its processes, before it asks for its node


class _GraceSkipped:
    """The ``time`` module as Ray's ``node.py`` sees it within :func:`started_lean`: once the
    raylet is known registered (``armed``), the next sleep of :data:`RAY_GRACE_S` (Ray's
    "grace period to let the Raylet register with the GCS", right after it starts its
    processes) returns at once: ~0.1 s on the way to the first trial of every run on an
    instance of the command's own. Every other call is the module's own."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.armed = False

    def sleep(self, seconds: float) -> None:
        if self.armed and seconds == RAY_GRACE_S:
            self.armed = False
            return
        self._real.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


RAYLET_EXIT_WAIT_S = 0.1  # its graceful part took 10-30 ms on a 2-core laptop


@contextlib.contextmanager
def ended_quickly() -> Iterator[None]:
    """Within the block, Ray's shutdown of an instance of the command's own (``ray.shutdown``)
    waits at most :data:`RAYLET_EXIT_WAIT_S` for its raylet to end after SIGTERM, then SIGKILLs
    it (:func:`_raylet_ended`); Ray waits up to a second. Anything else is Ray's own."""
    from ray._private import node as ray_node
    from ray._private import ray_constants

    from tuner.ray.tune_patches import swapped

    kill_type = ray_node.Node._kill_process_type

    def raylet_ended_first(self: Any, process_type: str, *args: Any, **kwargs: Any) -> Any:
        if process_type == ray_constants.PROCESS_TYPE_RAYLET and not args and kwargs.get("check_alive") is False:
            with contextlib.suppress(Exception):  # Ray's internals moved: its own kill follows
                _raylet_ended(self.all_processes[process_type][0].process)
        return kill_type(self, process_type, *args, **kwargs)  # finds it ended

    with swapped(ray_node.Node, "_kill_process_type", raylet_ended_first):
        yield


def _raylet_ended(process: Any, wait_s: float = RAYLET_EXIT_WAIT_S) -> None:
    """SIGTERM the raylet and let it do what it does on it (leave the GCS, end its agents and
    workers: 10-30 ms), then SIGKILL it if it is still there. What it did after that was wait
    for a gRPC polling thread of Ray's own, which looks for its queue's shutdown only every
    250 ms: 0.25 s at the end of one run in two to six (BENCHMARKS.md i). Nothing of it is
    lost: its object store's memory is a file already unlinked, and a worker or agent still
    alive is killed right after (:func:`tuner.ray.reaping.reap`)."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=1)
