"""Ray's settings for a tuner run: set when asked, a user's own value left as it is."""

from __future__ import annotations

import os

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
