"""Starting or joining a Ray cluster, and leaving it (what it holds: :mod:`tuner.ray.nodes`).

Without an address tuner starts a local instance of its own (``ray.init(address="local")``), or
joins the one ``tuner up`` keeps (:func:`resolve`, :mod:`tuner.ray.instance`): a cluster some
other ``ray start`` left on this machine, dead or alive, is never joined by accident.
``--address auto`` joins this machine's cluster, ``HOST:PORT`` a cluster's GCS,
``ray://HOST:PORT`` a cluster through Ray Client; a cluster that is not there is said in one
line at once instead of Ray's minute of retries, and one whose GCS takes connections but does
not answer (a stopped process) too, instead of a wait without end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import warnings
from typing import Any

from tuner import signals
from tuner.errors import InputError, RunError, first_line
from tuner.ray import auth, head, logs, reaping, shipping

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


def _reachable(address: str) -> str:
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


def _client_reachable(address: str) -> None:
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


_on_local_instance = False  # set by connect(): see on_local_instance()
_kept: Any = None  # the instance tuner up keeps (tuner.ray.instance.Instance), when joined


def on_local_instance() -> bool:
    """Whether this driver started a local instance of its own or joined the one ``tuner up``
    keeps: one machine, no autoscaler, resources that do not change while a sweep runs."""
    return _on_local_instance


def kept_instance() -> Any:
    """The instance ``tuner up`` keeps (:class:`tuner.ray.instance.Instance`) when this driver
    joined it, else None."""
    return _kept


def connect(
    address: str | None = None,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Start a local Ray instance (``address`` None) or join a running cluster
    (``auto``, ``HOST:PORT``, or ``ray://HOST:PORT`` through Ray Client).

    A local instance uses every core of this machine (or ``num_cpus``), starts no dashboard,
    and keeps token authentication on (Ray 2.60's default for a local ``ray.init()``; a cluster
    started with ``ray start`` needs ``RAY_AUTH_MODE=token`` on every node and driver, and the
    driver needs the cluster's token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or
    ``~/.ray/auth_token``). ``runtime_env`` ships a user's code to every worker
    (:func:`tuner.usercode.runtime_env`). Returns the cluster's total resources.

    Raises:
        InputError: ``RAY_AUTH_MODE=disabled`` is set (tuner never turns authentication off),
            or no cluster answers at ``address``.
        RunError: the cluster refused this driver (its token).
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise InputError(
            "RAY_AUTH_MODE=disabled: tuner keeps Ray's token authentication on; unset it "
            "(and hand the cluster's token to this driver instead)"
        )
    auth.token_mode()
    import ray

    if ray.is_initialized() and runtime_env:
        log.warning(
            "Ray was already started in this process: its runtime environment stands, and the sweep's "
            "own code (%s) is not shipped to other nodes",
            runtime_env.get("working_dir") or runtime_env,
        )
    if not ray.is_initialized():
        for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray._private", "ray.util.client"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # TensorBoard's writer warns on every inf it logs: a diverged trial reports inf losses.
        logging.getLogger("tensorboardX.x2num").setLevel(logging.ERROR)
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        if address is None:
            kwargs.update(
                address="local",
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                include_dashboard=False,
                dashboard_host="127.0.0.1",
                _system_config=head.system_config(),
            )
        else:
            if address.startswith("ray://"):
                _client_reachable(address)
            else:
                _token_accepted(address, _reachable(address))
            kwargs["address"] = address
        shipping.check(runtime_env)  # a named pipe in the shipped folder would hang ray.init
        logs.install()
        _init(kwargs, address)
        logs.install()  # handlers Ray added as it started
        global _on_local_instance, _kept
        _kept = _kept_by_tuner_up(address) if address is not None else None
        _on_local_instance = address is None or _kept is not None
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}


def _init(kwargs: dict[str, Any], address: str | None) -> None:
    """``ray.init(**kwargs)`` with SIGTERM and SIGHUP as Ctrl-C (:func:`tuner.signals.as_interrupt`)
    all along, where Ray's own start would set a SIGTERM handler that ends it in a raw
    ``SystemExit`` traceback (Ray's handler is set once it is up, as Ray means it), and the
    Python warnings Ray gives as it connects (Ray Client's timeout) in the log, not on the console.

    Raises:
        InputError: a Ray Client address that does not answer as one.
        RunError: the cluster refused this driver (its token), or cannot be joined.
        KeyboardInterrupt: Ctrl-C, SIGTERM or SIGHUP while Ray started (what it started is stopped).
    """
    import ray
    from ray._private import utils as ray_utils

    wanted: list[Any] = []
    set_handler = ray_utils.set_sigterm_handler
    ray_utils.set_sigterm_handler = wanted.append  # type: ignore[assignment]
    try:
        with signals.as_interrupt(), warnings.catch_warnings(record=True) as said, head.started_lean(address):
            warnings.simplefilter("always")
            try:
                ray.init(**kwargs)
            except ray.exceptions.AuthenticationError as e:
                raise _cannot_join(address, e) from e
            except (ConnectionError, TimeoutError) as e:
                if address is not None and address.startswith("ray://"):
                    raise InputError(
                        f"--address {address}: no Ray Client server answers there ({type(e).__name__}: "
                        f"{first_line(e)}); is the address right (the head's ray client port)?"
                    ) from None
                raise _cannot_join(address, e) from e
            except KeyboardInterrupt:  # what a local instance had started goes, its agents included
                started = _instance_processes() + _started_here() if address is None else []
                with contextlib.suppress(Exception):
                    ray.shutdown()
                reaping.reap(started)
                raise
        for w in said:
            log.debug("while connecting: %s: %s", w.category.__name__, w.message)
    finally:
        ray_utils.set_sigterm_handler = set_handler  # type: ignore[assignment]
    if wanted and threading.current_thread() is threading.main_thread() and not signals.active():
        set_handler(wanted[-1])  # a command's own as_interrupt (tuner.cli) stays in force


def _instance_processes() -> list[reaping.Process]:
    """The processes of the local instance this driver started (Ray's own, and every process
    under them: the raylet's workers and agents); none for a cluster it joined."""
    out: list[reaping.Process] = []
    try:
        from ray._private import worker as ray_worker

        node = ray_worker._global_node
        if node is None or not node.is_head():
            return []
        for infos in list(node.all_processes.values()):
            for info in infos:
                pid = getattr(info.process, "pid", None)
                if pid is not None:
                    out += reaping.processes(pid)
    except Exception as e:  # Ray's internals moved: its own shutdown is all there is
        log.debug("the local instance's processes are not known: %s", e)
    return out


def _started_here() -> list[reaping.Process]:
    """Ray's processes this driver started (Ray's programs and scripts among its children, and
    every process under them), while Ray does not know them yet: an instance still starting."""
    import ray

    ray_dir = os.path.dirname(os.path.abspath(ray.__file__))
    return reaping.processes(os.getpid(), only=lambda pid: ray_dir in reaping.command(pid))


def _kept_by_tuner_up(address: str) -> Any:
    from tuner.ray import instance

    kept = instance.running()
    return kept if kept is not None and kept.address == address else None


def _cannot_join(address: str, e: BaseException) -> RunError:
    return RunError(
        f"cannot join the Ray cluster at {address}: {type(e).__name__}: {first_line(e)} "
        "(is the address right, and does this driver hold the cluster's token: RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token?)"
    )


def _token_accepted(address: str, resolved: str) -> None:
    """Fail at once when the cluster's GCS refuses this driver's token: Ray's own start
    retries a refused token once a second for ~20 s before it says so."""
    import ray

    try:
        auth.gcs_client(resolved)  # its C++ warning of a refusal is kept off stderr: said in our one line instead
    except ray.exceptions.AuthenticationError as e:
        raise _cannot_join(address, e) from None
    except Exception as e:  # anything else: Ray's own start says it, with its retries
        log.debug("GCS preflight at %s: %s", resolved, e)


def connected() -> bool:
    """Whether this process is connected to Ray."""
    import ray

    return bool(ray.is_initialized())


def disconnect(process_ends: bool = False) -> None:
    """Shut the local Ray instance down (or leave the cluster), in a fraction of a second.

    A process of the local instance's that outlives it (a trial worker whose function left a
    thread running: Python's exit waits for it, or a stopped trial still computing) is killed
    right after (:mod:`tuner.ray.reaping`).

    Ray's own shutdown gives each process it started a second to answer SIGTERM; the
    autoscaler's monitor always took that second, and an instance of the command's own starts
    none (:func:`tuner.ray.head.started_lean`). A joined cluster's processes are never touched.

    Leaving the instance ``tuner up`` keeps, it leaves workers warm for the next run
    (:func:`tuner.ray.prestart.keep_warm`): as many as this run's trials ran at once, or the
    instance's CPUs. With ``process_ends`` (the ``tuner`` command, whose process ends at once
    after its exit functions) it leaves that instance without Ray's shutdown, whose teardown of
    the driver's core worker takes 0.25-0.3 s: the instance ends the job when the driver's
    process ends, as it does for any script that ends without ``ray.shutdown()``. Ray's own
    exit hook is taken off, so the exit functions do not run it either (BENCHMARKS.md i).
    """
    import ray

    if not ray.is_initialized():
        return
    global _on_local_instance, _kept
    kept, _kept = _kept, None
    warm = 0
    if kept is not None:
        from tuner.ray import prestart

        with contextlib.suppress(Exception):
            warm = prestart.slots_wanted or int(ray.cluster_resources().get("CPU", 0))
    if kept is not None and process_ends:
        import atexit

        from ray._private import worker as ray_worker

        atexit.unregister(ray_worker.shutdown)
    else:
        started = _instance_processes()  # the raylet's workers among them: the trials' processes
        ray.shutdown()
        killed = reaping.reap(started)
        if killed:  # a trial function left a thread running: its process would never end
            log.debug("killed %d trial processes that outlived the local Ray instance: %s", len(killed), killed)
    _on_local_instance = False
    if kept is not None and warm > 0:
        prestart.keep_warm(kept.address, kept.pid, warm)


def is_client() -> bool:
    """True when connected through Ray Client (``ray://``): Tune then runs on the head node
    and our progress callback cannot print here."""
    import ray

    return bool(ray.util.client.ray.is_connected())
