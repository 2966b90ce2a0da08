"""Ray's settings for a tuner run: set when asked, a user's own value left as it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tuner.ray import settings


def test_a_setting_holds_for_its_block_and_a_users_own_value_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNE_RESULT_BUFFER_LENGTH", raising=False)
    with settings.setting("TUNE_RESULT_BUFFER_LENGTH", "1000"):
        assert os.environ["TUNE_RESULT_BUFFER_LENGTH"] == "1000"
    assert "TUNE_RESULT_BUFFER_LENGTH" not in os.environ
    with pytest.raises(RuntimeError), settings.setting("TUNE_RESULT_BUFFER_LENGTH", "1000"):
        raise RuntimeError("the experiment failed")
    assert "TUNE_RESULT_BUFFER_LENGTH" not in os.environ  # removed after a failure too
    monkeypatch.setenv("TUNE_RESULT_BUFFER_LENGTH", "1")
    with settings.setting("TUNE_RESULT_BUFFER_LENGTH", "1000"):
        assert os.environ["TUNE_RESULT_BUFFER_LENGTH"] == "1"
    assert os.environ["TUNE_RESULT_BUFFER_LENGTH"] == "1"  # the user's, still there


def test_a_drivers_settings_keep_token_authentication_on_and_leave_a_users_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert settings.SETTINGS["RAY_AUTH_MODE"] == "token"
    for key in settings.SETTINGS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")
    settings.apply_settings()
    assert os.environ["RAY_DEDUP_LOGS"] == "0"
    assert all(os.environ[k] == v for k, v in settings.SETTINGS.items() if k != "RAY_DEDUP_LOGS")


TRIES = ("RAY_raylet_client_connect_timeout_milliseconds", "RAY_raylet_client_num_connect_attempts")


def test_rays_processes_try_a_local_socket_every_10_ms_within_rays_own_10_s() -> None:
    timeout_ms, attempts = (int(settings.SETTINGS[k]) for k in TRIES)
    assert timeout_ms == 10
    assert timeout_ms * attempts >= 10 * 1000  # Ray's own: 10 tries, 1 s apart
    assert TRIES in settings.TOGETHER


@pytest.mark.parametrize("users", [{}, {TRIES[0]: "1000"}, {TRIES[1]: "3"}, {TRIES[0]: "5", TRIES[1]: "7"}])
def test_a_users_value_of_either_try_setting_keeps_both_as_the_user_has_them(users: dict[str, str]) -> None:
    env = {"PATH": "/bin", **users}
    added = settings.defaults(env)
    if users:
        assert not set(TRIES) & set(added)  # neither: a user's 1 s apart with 1000 tries would wait 1000 s
    else:
        assert {k: added[k] for k in TRIES} == {k: settings.SETTINGS[k] for k in TRIES}
    assert added["RAY_AUTH_MODE"] == "token" and "PATH" not in added
    assert env == {"PATH": "/bin", **users}  # the environment given is not changed


def test_the_instance_tuner_up_starts_takes_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``tuner up``'s ``ray start`` (whose raylet and workers read them) is given the settings as
    a driver is, by the same rule: a user's value of one try setting keeps both as Ray has them."""
    from tuner.ray import instance

    given: list[dict[str, str]] = []

    def popen(args: list[str], env: dict[str, str], **kwargs: Any) -> None:
        given.append(env)
        raise RuntimeError("not started")

    import types

    monkeypatch.setattr(instance, "running", lambda: None)
    # this module's subprocess only: Ray's own subclasses subprocess.Popen as it is imported
    fake = types.SimpleNamespace(**{**vars(instance.subprocess), "Popen": popen})
    monkeypatch.setattr(instance, "subprocess", fake)
    for users in ({}, {TRIES[1]: "3"}):
        for key in settings.SETTINGS:  # a driver's settings (auth applies them) included
            monkeypatch.delenv(key, raising=False)
        for key, value in users.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(RuntimeError, match="not started"):
            instance._start(tmp_path / "instance.json", None, None, 1.0)
        env = given[-1]
        assert env["RAY_AUTH_MODE"] == "token"
        if users:
            assert TRIES[0] not in env and env[TRIES[1]] == "3"
        else:
            assert env[TRIES[0]] == "10" and env[TRIES[1]] == "1000"
