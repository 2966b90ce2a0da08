"""Which Ray cluster a command joins, and whether it is there to join, said in one line at once.

Without an address a command starts a local instance of its own, or joins the one ``tuner up``
keeps (:func:`resolve`, :mod:`tuner.ray.instance`): a cluster some other ``ray start`` left on
this machine, dead or alive, is never joined by accident. ``--address auto`` joins this
machine's cluster, ``HOST:PORT`` a cluster's GCS, ``ray://HOST:PORT`` a cluster through Ray
Client. A cluster that is not there is said at once instead of Ray's minute of retries, one
whose GCS takes connections but does not answer (a stopped process) too, instead of a wait
without end, and a refused token instead of Ray's 20 s of retries (:mod:`tuner.ray.cluster`
then connects).
"""

from __future__ import annotations

import logging
import os
import re
import socket

from tuner.errors import InputError, RunError, first_line
from tuner.ray import auth

log = logging.getLogger(__name__)

ANSWER_S = 10.0  # a cluster's GCS that takes connections must answer a handshake within this


def check_address(address: str | None) -> str | None:
    """``--address``: ``auto``, ``HOST:PORT`` or ``ray://HOST[:PORT]`` (None: a local instance).

    Raises:
        InputError: any other form.
    """
    if address is None:
        return None
    rule = "must be auto, HOST:PORT or ray://HOST:PORT"
    if address == "auto":
        return address
    if re.fullmatch(r"ray://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?", address) or re.fullmatch(
        r"[A-Za-z0-9.\-]+:\d{1,5}", address
    ):
        port = re.search(r":(\d{1,5})/?$", address)
        if port is None or 1 <= int(port.group(1)) <= 65535:
            return address
        rule = f"has port {port.group(1)}: a port is 1 to 65535"
    raise InputError(f"--address: {address[:80]!r} {rule}")


def resolve(address: str | None, num_cpus: int | None = None) -> str | None:
    """The cluster a command joins: ``address`` checked (:func:`check_address`), else the local
    instance ``tuner up`` keeps up (:mod:`tuner.ray.instance`) when there is one and no
    ``num_cpus`` of its own was asked for, else None (a local instance of the command's own).

    Raises:
        InputError: a malformed ``address``.
    """
    address = check_address(address)
    if address is None and num_cpus is None:
        from tuner.ray import instance

        kept = instance.running()
        if kept is not None:
            return kept.address
    return address


def _named(address: str, resolved: str) -> str:
    """The cluster ``address`` names, as the user gave it (``auto``: ``RAY_ADDRESS`` when it is
    set, Ray's rule, else the cluster the last ``ray start`` here left), the address Ray
    resolved it to in parentheses when that differs."""
    env = os.environ.get("RAY_ADDRESS", "")
    if address == "auto" and not env:
        return f"the cluster this machine last started at {resolved}"
    given = env if address == "auto" else address
    shown = given + (f" ({resolved})" if resolved != given else "")
    return f"the cluster at RAY_ADDRESS={shown}" if address == "auto" else f"the cluster at {shown}"


def reachable(address: str) -> str:
    """Fail at once when nothing listens at a cluster's GCS (``auto`` or ``HOST:PORT``);
    returns the GCS's ``HOST:PORT``."""
    from ray._private import services

    try:
        resolved = services.canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as e:
        raise InputError(f"--address {address}: no Ray cluster found ({first_line(e)})") from None
    if resolved is None:
        raise InputError(
            f"--address {address}: no Ray cluster runs on this machine (start one with ray start --head, "
            "or leave --address out for a local instance)"
        )
    host, _, port = resolved.rpartition(":")
    named = _named(address, resolved)
    refused = _refused(host, port)
    if refused is not None:
        raise InputError(
            f"--address {address}: {named} is not running ({refused}); "
            "start it again, or leave --address out for a local instance"
        )
    from tuner.ray.instance import answers

    if not answers(resolved, timeout=ANSWER_S):  # listening but silent: ray.init would hang on it
        raise InputError(
            f"--address {address}: {named} takes connections but does not answer within {ANSWER_S:g} s "
            "(its GCS stopped or hung?)"
        )
    return resolved


def client_reachable(address: str) -> None:
    """Fail at once when nothing listens at a Ray Client address (``ray://HOST[:PORT]``, port
    10001 by default): Ray Client's own connect retries for its timeout, then warns."""
    hostport = address.removeprefix("ray://").rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or host.endswith(":"):  # no port (an IPv6 host alone included)
        host, port = hostport, "10001"
    refused = _refused(host, port)
    if refused is not None:
        raise InputError(
            f"--address {address}: no Ray Client server answers at {host}:{port} ({refused}); "
            "is the address right (the head's ray client port, through an SSH tunnel)?"
        )


def _refused(host: str, port: str) -> str | None:
    """Why nothing takes a connection at ``host:port`` within 3 s (the system's words), or None."""
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        return str(e.strerror or e)
    return None


def cannot_join(address: str, e: BaseException) -> RunError:
    """The one line for a cluster at ``address`` that refused this driver or cannot be joined (``e``)."""
    return RunError(
        f"cannot join the Ray cluster at {address}: {type(e).__name__}: {first_line(e)} "
        "(is the address right, and does this driver hold the cluster's token: RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token?)"
    )


def token_accepted(address: str, resolved: str) -> None:
    """Fail at once when the cluster's GCS refuses this driver's token: Ray's own start
    retries a refused token once a second for ~20 s before it says so."""
    import ray

    try:
        auth.gcs_client(resolved)  # its C++ warning of a refusal is kept off stderr: said in our one line instead
    except ray.exceptions.AuthenticationError as e:
        raise cannot_join(address, e) from None
    except Exception as e:  # anything else: Ray's own start says it, with its retries
        log.debug("GCS preflight at %s: %s", resolved, e)
