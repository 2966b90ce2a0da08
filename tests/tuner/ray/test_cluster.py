"""Starting or joining Ray: token authentication stays on, the dashboard off and on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.errors import InputError
from tuner.ray import cluster


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
    assert cluster.autoscaler_node_types() == []  # a local instance has no autoscaler to report
