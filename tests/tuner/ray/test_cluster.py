"""Starting or joining Ray: token authentication stays on, the dashboard off and on loopback;
a Ray Client address that does not answer is said at once (a refused token: ``test_joining.py``)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

from tuner.errors import InputError
from tuner.ray import cluster, entry, joining, nodes


def test_token_authentication_cannot_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(InputError, match="RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on"):
        cluster.connect()


def test_a_run_with_authentication_disabled_exits_2_and_writes_nothing(
    write_sweep: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuner.cli import main

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert main(["run", str(write_sweep()), "--storage", str(tmp_path / "runs")]) == 2
    assert "RAY_AUTH_MODE=disabled" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("ray_session")
def test_the_local_instance_keeps_token_auth_on_and_its_dashboard_off_and_on_loopback() -> None:
    import ray
    from ray._private import ray_constants
    from ray._raylet import AuthenticationMode, get_authentication_mode

    node = ray._private.worker._global_node
    params = node._ray_params
    assert params.include_dashboard is False and params.dashboard_host == "127.0.0.1"
    # nor Ray's API server (the dashboard's head in its minimal form), which ray.init starts
    # anyway and waits for: no process of it, no port
    assert ray_constants.PROCESS_TYPE_DASHBOARD not in node.all_processes and node.webui_url is None
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert nodes.autoscaler_node_types() == []  # a local instance has no autoscaler to report
    # no task events: what Ray's dashboard and state API would show, and nothing can read here
    assert params._system_config["task_events_report_interval_ms"] == 0
    # every Python worker starts through tuner's entry (head.worker_command), which defers what
    # a trial never uses
    (raylet,) = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET]
    (command,) = [arg for arg in raylet.process.args if arg.startswith("--python_worker_command=")]
    assert f" {entry.__file__} " in command


def test_an_unreachable_ray_client_address_is_bad_input_in_one_line_without_warnings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray Client's own connect timed out with a raw ``UserWarning`` and ``warnings.warn(`` on
    the console, and a run failure (exit 1): nothing answering is bad input, said at once."""
    import socket

    from tests.cluster import free_port

    port = free_port()
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        joining.client_reachable(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert str(e.value).startswith(
        f"--address ray://127.0.0.1:{port}: no Ray Client server answers at 127.0.0.1:{port} ("
    )
    # something listens, but Ray Client's handshake times out: Ray warns, then raises
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    address = f"ray://127.0.0.1:{server.getsockname()[1]}"
    joining.client_reachable(address)  # takes connections: Ray Client's own connect says the rest

    import ray

    def timing_out(**kwargs: Any) -> None:
        import warnings

        warnings.warn("Ray Client connection timed out. Ensure that ...", UserWarning, stacklevel=1)
        raise ConnectionError("ray client connection timeout")

    monkeypatch.setattr(ray, "init", timing_out)
    try:
        with pytest.raises(InputError) as e:
            cluster._init({"address": address}, address)
    finally:
        server.close()
    assert str(e.value) == (
        f"--address {address}: no Ray Client server answers there (ConnectionError: ray client connection timeout); "
        "is the address right (the head's ray client port)?"
    )
    assert "UserWarning" not in capsys.readouterr().err


def test_sigterm_while_ray_starts_is_ctrl_c_and_rays_own_handler_is_set_once_it_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's start set a SIGTERM handler that ends the driver with a raw ``SystemExit: 15``
    traceback (a packing working_dir, a slow cluster): while it starts, SIGTERM and SIGHUP are
    Ctrl-C, as during the run; Ray's handler stands once Ray is up, as Ray means it."""
    import signal

    import ray
    from ray._private import utils as ray_utils

    def rays_handler(signum: int, frame: Any) -> None:
        sys.exit(signum)

    def terminated(**kwargs: Any) -> None:
        ray_utils.set_sigterm_handler(rays_handler)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    shutdowns: list[bool] = []
    monkeypatch.setattr(ray, "shutdown", lambda: shutdowns.append(True))
    monkeypatch.setattr(cluster, "_instance_processes", lambda: [])  # this test session's own Ray stays
    monkeypatch.setattr(cluster, "_started_here", lambda: [])  # (its raylet killed, the session's driver exits)
    before = signal.getsignal(signal.SIGTERM)
    try:
        monkeypatch.setattr(ray, "init", terminated)
        with pytest.raises(KeyboardInterrupt):
            cluster._init({"address": "local"}, None)
        assert shutdowns == [True]  # what Ray had started is stopped
        assert signal.getsignal(signal.SIGTERM) == before
        monkeypatch.setattr(ray, "init", lambda **kwargs: ray_utils.set_sigterm_handler(rays_handler))
        cluster._init({"address": "local"}, None)
        assert signal.getsignal(signal.SIGTERM) is rays_handler
        assert (
            ray_utils.set_sigterm_handler is not None
            and ray_utils.set_sigterm_handler.__name__ == "set_sigterm_handler"
        )
    finally:
        signal.signal(signal.SIGTERM, before)
