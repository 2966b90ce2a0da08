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
from tuner.ray import auth, cluster


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
        cluster._reachable("auto")
    assert time.monotonic() - started < 10  # Ray's own retries take a minute and more
    port = stale_cluster_file.rsplit(":", 1)[1]  # Ray may show 127.0.0.1 as the node's own address
    assert str(e.value).startswith("--address auto: the cluster this machine last started at ")
    assert f":{port} is not running" in str(e.value)
