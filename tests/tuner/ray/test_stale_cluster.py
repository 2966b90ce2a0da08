"""A dead cluster's leftovers never hang a run: ``ray start`` on this machine leaves
``ray_current_cluster`` (in Ray's temp dir) naming its GCS, and after a crash the file stays.
Without ``--address`` tuner starts its own instance whatever the file says; ``--address auto``
reads it and says at once that nothing answers there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import free_port
from tuner.errors import InputError
from tuner.ray import auth, cluster, joining


@pytest.fixture
def stale_cluster_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private Ray temp dir whose ``ray_current_cluster`` names a GCS nobody listens at."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    dead = f"127.0.0.1:{free_port()}"
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(dead)  # Ray's temp dir: $RAY_TMPDIR/ray
    # Ray's "auto" also looks for live GCS processes on the machine: the shared test machine
    # may run other sessions' instances; the machine of the issue runs none.
    from ray._private import services

    monkeypatch.setattr(services, "find_gcs_addresses", lambda: [])
    return dead


def test_without_an_address_a_local_instance_of_its_own_is_started(
    stale_cluster_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(auth, "_require_token_auth", lambda: None)
    assert cluster.connect(num_cpus=2) == {"CPU": 2.0}
    assert calls and calls[0]["address"] == "local", calls  # never the file's dead cluster


def test_address_auto_with_a_dead_cluster_fails_at_once(stale_cluster_file: str) -> None:
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        joining.reachable("auto")
    assert time.monotonic() - started < 10  # Ray's own retries take a minute and more
    port = stale_cluster_file.rsplit(":", 1)[1]  # Ray may show 127.0.0.1 as the node's own address
    assert str(e.value).startswith("--address auto: the cluster this machine last started at ")
    assert f":{port} is not running" in str(e.value)


@pytest.fixture
def silent_gcs() -> Any:
    """A port that takes connections and never answers: a GCS whose process is stopped
    (SIGSTOP), as the kernel still completes a connection to its listening socket."""
    import socket

    server = socket.socket()
    server.bind(("0.0.0.0", 0))  # Ray names a local address by the machine's own IP
    server.listen(8)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def test_a_cluster_that_takes_connections_but_does_not_answer_fails_in_seconds(
    silent_gcs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(joining, "ANSWER_S", 1.0)
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        joining.reachable(silent_gcs)
    assert time.monotonic() - started < 5
    port = silent_gcs.rsplit(":", 1)[1]
    assert str(e.value).startswith(f"--address {silent_gcs}: the cluster at {silent_gcs}")  # as given
    assert str(e.value).endswith(" takes connections but does not answer within 1 s (its GCS stopped or hung?)")
    assert f":{port}" in str(e.value)


def test_answers_tells_a_grpc_server_from_a_silent_port(silent_gcs: str) -> None:
    from concurrent import futures

    import grpc

    from tuner.ray.instance import answers

    assert not answers(silent_gcs, timeout=0.5)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        assert answers(f"127.0.0.1:{port}", timeout=5)
    finally:
        server.stop(None)


def test_an_address_is_named_as_the_user_gave_it_and_ray_address_as_its_source(
    stale_cluster_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray resolves 127.0.0.1 to the machine's own IP: the message names what the user gave,
    and for ``auto`` with ``RAY_ADDRESS`` set, that it came from there (not a ``ray start``)."""
    from ray._private import services

    dead = f"127.0.0.1:{free_port()}"
    monkeypatch.setattr(services, "resolve_ip_for_localhost", lambda host: "192.0.2.2")  # the machine
    with pytest.raises(InputError) as e:
        joining.reachable(dead)
    port = dead.rsplit(":", 1)[1]
    assert str(e.value).startswith(f"--address {dead}: the cluster at {dead} (192.0.2.2:{port}) is not running (")
    monkeypatch.setenv("RAY_ADDRESS", dead)
    with pytest.raises(InputError) as e:
        joining.reachable("auto")
    assert str(e.value).startswith(f"--address auto: the cluster at RAY_ADDRESS={dead} (192.0.2.2:{port}) is not ")


@pytest.mark.parametrize("greeting", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.1 400 Bad Request\r\n\r\n", b""])
def test_answers_is_false_for_a_server_that_is_not_http2(greeting: bytes) -> None:
    """A port held by another kind of server (one that greets, refuses the preface or hangs up)
    is not a GCS, and says so within the timeout."""
    import socket
    import threading

    from tuner.ray.instance import answers

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(greeting)

    threading.Thread(target=serve, daemon=True).start()
    try:
        started = time.monotonic()
        assert not answers(f"127.0.0.1:{server.getsockname()[1]}", timeout=2)
        assert time.monotonic() - started < 2.5
    finally:
        server.close()
