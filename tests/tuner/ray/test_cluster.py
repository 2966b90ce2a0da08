"""Starting or joining Ray: token authentication stays on, the dashboard off and on loopback;
a driver whose token a cluster refuses is told at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.cluster import ROOT
from tuner.errors import InputError
from tuner.ray import cluster, nodes


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
    from ray._raylet import AuthenticationMode, get_authentication_mode

    params = ray._private.worker._global_node._ray_params
    assert params.include_dashboard is False and params.dashboard_host == "127.0.0.1"
    assert get_authentication_mode() == AuthenticationMode.TOKEN
    assert nodes.autoscaler_node_types() == []  # a local instance has no autoscaler to report


@pytest.mark.usefixtures("ray_session")
def test_a_refused_token_is_one_line_at_once() -> None:
    """Ray's own start retries a refused token once a second for ~20 s; the GCS is asked
    first, in a driver holding another token: one line (no C++ log on stderr), exit 1."""
    import ray

    gcs = ray._private.worker._global_node.gcs_address
    code = (
        "import sys; from tuner.errors import RunError; from tuner.ray import cluster\n"
        "try:\n    cluster._token_accepted(sys.argv[1], sys.argv[1])\n"
        "except RunError as e:\n    print(e, file=sys.stderr); sys.exit(1)"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, gcs], env=env, cwd=ROOT, capture_output=True, text=True)
    assert time.monotonic() - started < 15, "Ray's retries, not the GCS's answer"
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cannot join the Ray cluster at {gcs}: AuthenticationError"), lines
    # the session's own token is accepted: nothing raised, nothing printed
    ok = subprocess.run([sys.executable, "-c", code, gcs], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr.strip() == "", ok.stderr
