"""Starting or joining a Ray cluster, what it holds, and what its autoscaler can add.

Without an address tuner always starts a local instance of its own (``ray.init(address=
"local")``): a cluster some earlier ``ray start`` left on this machine, dead or alive, is never
joined by accident. ``--address auto`` joins this machine's cluster, ``HOST:PORT`` a cluster's
GCS, ``ray://HOST:PORT`` a cluster through Ray Client; a cluster that is not there is said in
one line at once instead of Ray's minute of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Iterator
from typing import Any

from tuner.errors import InputError, RunError

log = logging.getLogger(__name__)

# Ray's settings for a tuner run, applied when it connects (never at import).
SETTINGS = {
    # Plain output: our own progress instead of Ray's tables.
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "0",
    "RAY_DEDUP_LOGS": "1",
    # The driver snapshots the experiment's state (every trial's status, the searcher, ASHA's
    # rungs) for `tuner resume`: Ray's "auto" period, at most 5% of the driver's time, but from
    # 0.5 s instead of Ray's 10 s floor (tuner.ray.experiment.snapshot_floor): as fresh as 0.5 s
    # while a snapshot is cheap, and never a cost that grows with the number of trials.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_GLOBAL_CHECKPOINT_S": "auto",
    # A local instance starts no idle workers ahead: Tune starts a new process for each trial's
    # actor anyway, and the prestarted ones only took the cores and the start-up slots those
    # need (~1 s of a run's start on 2 cores).
    "RAY_prestart_worker_first_driver": "0",
    # Token authentication, said explicitly: a local instance makes a token if there is none
    # (~/.ray/auth_token); a driver joining a cluster presents one. Never "disabled".
    "RAY_AUTH_MODE": "token",
}


def apply_settings() -> None:
    """Set :data:`SETTINGS` in this process's environment (a user's own value wins)."""
    for key, value in SETTINGS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def setting(key: str, value: str) -> Iterator[None]:
    """One Ray setting in this process's environment for the duration of a block (an
    experiment), removed afterwards; a user's own value wins and is left as it is."""
    if key in os.environ:
        yield
        return
    os.environ[key] = value
    try:
        yield
    finally:
        os.environ.pop(key, None)


def check_address(address: str | None) -> str | None:
    """``--address``: ``auto``, ``HOST:PORT`` or ``ray://HOST[:PORT]`` (None: a local instance).

    Raises:
        InputError: any other form.
    """
    if address is None:
        return None
    if (
        address == "auto"
        or re.fullmatch(r"ray://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?", address)
        or re.fullmatch(r"[A-Za-z0-9.\-]+:\d{1,5}", address)
    ):
        return address
    raise InputError(f"--address: {address[:80]!r} must be auto, HOST:PORT or ray://HOST:PORT")


def _reachable(address: str) -> str:
    """Fail at once when nothing listens at a cluster's GCS (``auto`` or ``HOST:PORT``);
    returns the GCS's ``HOST:PORT``."""
    from ray._private import services

    try:
        resolved = services.canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as e:
        raise InputError(f"--address {address}: no Ray cluster found ({_first_line(e)})") from None
    if resolved is None:
        raise InputError(
            f"--address {address}: no Ray cluster runs on this machine (start one with ray start --head, "
            "or leave --address out for a local instance)"
        )
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        what = "the cluster this machine last started" if address == "auto" else "the cluster"
        raise InputError(
            f"--address {address}: {what} at {resolved} is not running ({e.strerror or e}); "
            "start it again, or leave --address out for a local instance"
        ) from None
    return resolved


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
    apply_settings()
    import ray

    _require_token_auth()
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
            )
        else:
            if not address.startswith("ray://"):
                _token_accepted(address, _reachable(address))
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, TimeoutError, ray.exceptions.AuthenticationError) as e:
            raise _cannot_join(address, e) from e
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}


def _cannot_join(address: str, e: BaseException) -> RunError:
    return RunError(
        f"cannot join the Ray cluster at {address}: {type(e).__name__}: {_first_line(e)} "
        "(is the address right, and does this driver hold the cluster's token: RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token?)"
    )


def _token_accepted(address: str, resolved: str) -> None:
    """Fail at once when the cluster's GCS refuses this driver's token: Ray's own start
    retries a refused token once a second for ~20 s before it says so."""
    import ray
    from ray._raylet import GcsClient

    try:
        with _stderr_muted():  # the GCS client's own warning of the refusal: said in our one line instead
            GcsClient(address=resolved)
    except ray.exceptions.AuthenticationError as e:
        raise _cannot_join(address, e) from None
    except Exception as e:  # anything else: Ray's own start says it, with its retries
        log.debug("GCS preflight at %s: %s", resolved, e)


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


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else ""


def _require_token_auth() -> None:
    from ray._raylet import AuthenticationMode, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:  # Ray read its config before we set ours
        from ray._private.authentication.authentication_token_setup import _enable_token_auth

        _enable_token_auth()


def connected() -> bool:
    """Whether this process is connected to Ray."""
    import ray

    return bool(ray.is_initialized())


def disconnect() -> None:
    """Shut the local Ray instance down (or leave the cluster), in a fraction of a second.

    Ray's own shutdown gives each process it started a second to answer SIGTERM; the
    autoscaler's monitor, idle on a local instance, always takes that second. It holds nothing
    to save, so it is killed first (a joined cluster's processes are never touched).
    """
    import ray

    if not ray.is_initialized():
        return
    try:
        from ray._private import ray_constants
        from ray._private import worker as ray_worker

        node = ray_worker._global_node
        if node is not None and node.is_head():  # processes this driver started
            node._kill_process_type(
                ray_constants.PROCESS_TYPE_MONITOR, check_alive=False, allow_graceful=False, wait=False
            )
    except Exception as e:  # Ray's internals moved: its own shutdown still works, a second slower
        log.debug("could not stop Ray's monitor first: %s", e)
    ray.shutdown()


def is_client() -> bool:
    """True when connected through Ray Client (``ray://``): Tune then runs on the head node
    and our progress callback cannot print here."""
    import ray

    return bool(ray.util.client.ray.is_connected())


def cluster_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes: id, address and resources."""
    import ray

    return [
        {"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "resources": n["Resources"]}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def autoscaler_node_types() -> list[dict[str, Any]]:
    """The node types an autoscaler of this cluster can still start, as the cluster reports
    them to Ray's GCS (KubeRay does; a cluster made from this project's ``cluster.yaml``
    publishes its types with :func:`publish_node_types`): ``[{"name", "resources",
    "max_count"}]``, ``max_count`` -1 for no limit. Empty when nothing is reported."""
    import ray

    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:  # an older GCS, or Ray Client: no autoscaler to tell of
        return []
    if config is None:
        return []
    return [
        {"name": g.name, "resources": {k: float(v) for k, v in g.resources.items()}, "max_count": int(g.max_count)}
        for g in config.node_group_configs
        if g.max_count != 0
    ]


def publish_node_types(node_types: dict[str, dict[str, Any]], max_workers: int | None = None) -> None:
    """Tell the connected cluster's GCS which node types its autoscaler can start, in Ray's
    own cluster-config record (what KubeRay reports, and what Ray Data reads to scale from
    zero). ``node_types`` is a cluster launcher config's ``available_node_types``: each with
    ``resources`` (``CPU``, ``GPU``...) and ``max_workers``."""
    import ray
    from ray.core.generated import autoscaler_pb2

    config = autoscaler_pb2.ClusterConfig()
    for name, t in node_types.items():
        group = config.node_group_configs.add()
        group.name = name
        for key, value in (t.get("resources") or {}).items():
            group.resources[key] = int(value)
        group.min_count = int(t.get("min_workers", 0))
        group.max_count = int(t.get("max_workers", max_workers if max_workers is not None else -1))
    ray._private.worker.global_worker.gcs_client.internal_kv_put(
        ray._raylet.GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(),
        config.SerializeToString(),
        True,
        ray._raylet.GCS_AUTOSCALER_STATE_NAMESPACE.encode(),
    )


def _fits(resources: dict[str, Any], cpu: float, gpu: float) -> bool:
    return float(resources.get("CPU", 0)) >= cpu and float(resources.get("GPU", 0)) >= gpu


def check_resources(
    source: str, cpu: float, gpu: float, nodes: list[dict[str, Any]], node_types: list[dict[str, Any]] | None = None
) -> str | None:
    """Fail at once when no node can ever hold one trial, instead of pending forever.

    A trial fits a live node, or a node type the cluster's autoscaler reports it can start
    (``node_types``): then the sweep goes on and the returned note says its trials wait for
    that node. Otherwise it is bad input.

    Raises:
        InputError: naming ``resources.gpu`` or ``resources.cpu`` and what the cluster has.
    """
    if any(_fits(n["resources"], cpu, gpu) for n in nodes):
        return None
    types = [t for t in node_types or [] if _fits(t["resources"], cpu, gpu)]
    if types:
        return (
            f"no node of the cluster fits one trial ({cpu:g} CPU, {gpu:g} GPU) yet: trials wait for the "
            f"autoscaler to start a {' or '.join(t['name'] for t in types)} node"
        )
    pool = [n["resources"] for n in nodes] + [t["resources"] for t in node_types or []]
    have_gpu = max((float(r.get("GPU", 0)) for r in pool), default=0)
    have_cpu = max((float(r.get("CPU", 0)) for r in pool), default=0)
    scope = (
        "no node of this cluster (nor a node type its autoscaler reports)" if node_types else "no node of this cluster"
    )
    if gpu > have_gpu:
        raise InputError(
            f"{source}: resources.gpu: {gpu:g} per trial, but {scope} has "
            f"{'a GPU' if have_gpu == 0 else f'{gpu:g} GPUs (most: {have_gpu:g})'}"
        )
    raise InputError(f"{source}: resources.cpu: {cpu:g} per trial, but the largest node has {have_cpu:g} CPUs")
