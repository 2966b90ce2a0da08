"""Ray's token authentication, as tuner's drivers use it: always on (Ray 2.60's default for a
local ``ray.init()``; a cluster started with ``ray start`` needs ``RAY_AUTH_MODE=token`` on
every node and driver), a token made where a local instance needs one, and the GCS asked with
this process's token before Ray's own start (which retries a refused token for ~20 s)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tuner.ray.settings import apply_settings


def ensure_token() -> None:
    """Make this user's token (``~/.ray/auth_token``) if there is none, as ``ray.init`` does for
    a local instance; ``ray start`` does not (a token given by ``RAY_AUTH_TOKEN`` or
    ``RAY_AUTH_TOKEN_PATH`` is used as it is)."""
    from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled

    token_mode()
    ensure_token_if_auth_enabled(create_token_if_missing=True)


def gcs_client(address: str) -> Any:
    """A client of the GCS at ``HOST:PORT`` with this process's token (nothing else of Ray is
    started; its C++ warnings stay off stderr)."""
    from ray._raylet import GcsClient

    token_mode()
    with _stderr_muted():
        return GcsClient(address=address)


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a block (what Ray's C++ core logs there)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def token_mode() -> None:
    """This process as a driver of tuner's: :data:`tuner.ray.settings.SETTINGS` applied, Ray imported, token
    authentication on."""
    apply_settings()
    import ray  # noqa: F401 (Ray reads its configuration as it is imported)

    _require_token_auth()


def _require_token_auth() -> None:
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:  # Ray read its config before we set ours
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()
