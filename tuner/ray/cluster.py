"""Starting or joining a Ray cluster, and leaving it (what it holds: :mod:`tuner.ray.nodes`).

Without an address tuner starts a local instance of its own (``ray.init(address="local")``);
with one (:func:`tuner.ray.joining.resolve`: ``auto``, ``HOST:PORT``, ``ray://HOST:PORT``, or
the instance ``tuner up`` keeps) it joins that cluster once :mod:`tuner.ray.joining` has
checked, in one line at once, that it is there and takes this driver's token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from typing import Any

from tuner import signals
from tuner.errors import InputError, first_line
from tuner.ray import auth, head, joining, logs, reaping, shipping

log = logging.getLogger(__name__)

_on_local_instance = False  # set by connect(): see on_local_instance()
_left: list[reaping.Process] = []  # an instance of the command's own, left for the process's end (end_left)
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
                joining.client_reachable(address)
            else:
                joining.token_accepted(address, joining.reachable(address))
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
                raise joining.cannot_join(address, e) from e
            except (ConnectionError, TimeoutError) as e:
                if address is not None and address.startswith("ray://"):
                    raise InputError(
                        f"--address {address}: no Ray Client server answers there ({type(e).__name__}: "
                        f"{first_line(e)}); is the address right (the head's ray client port)?"
                    ) from None
                raise joining.cannot_join(address, e) from e
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


def _instance_processes(itself: bool = False) -> list[reaping.Process]:
    """The processes under those of the local instance this driver started (the raylet's
    workers and agents), with Ray's own (the raylet, the GCS) where ``itself``; none for a
    cluster it joined."""
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
                    noted = reaping.process(pid) if itself else None
                    out += ([noted] if noted is not None else []) + reaping.processes(pid)
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
    none (:func:`tuner.ray.head.started_lean`). Its raylet is given a tenth of a second
    (:func:`tuner.ray.head.ended_quickly`). A joined cluster's processes are never touched.

    Leaving the instance ``tuner up`` keeps, it leaves workers warm for the next run
    (:func:`tuner.ray.prestart.keep_warm`): as many as this run's trials ran at once, or the
    instance's CPUs.

    With ``process_ends`` (the ``tuner`` command, whose process ends at once after its exit
    functions) there is no Ray shutdown, whose teardown of the driver's core worker took
    0.03-0.3 s, and Ray's own exit hook is taken off, so the exit functions do not run it
    either (BENCHMARKS.md i):

    - ``tuner up``'s instance ends the job when the driver's process ends, as it does for any
      script that ends without ``ray.shutdown()``;
    - an instance of the command's own is left running for the exit functions (Ray Tune's
      takes its trainables out of the GCS), then killed whole just before the process ends
      (:func:`end_left`).
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
    own = _on_local_instance and kept is None  # an instance of the command's own
    if process_ends and (kept is not None or (own and reaping.supported())):
        import atexit

        from ray._private import worker as ray_worker

        atexit.unregister(ray_worker.shutdown)
        if own:  # ended with the process (end_left)
            _left[:] = _instance_processes(itself=True)
    else:
        started = _instance_processes()  # the raylet's workers among them: the trials' processes
        with head.ended_quickly() if own else contextlib.nullcontext():
            ray.shutdown()
        killed = reaping.reap(started)
        if killed:  # a trial function left a thread running: its process would never end
            log.debug("killed %d trial processes that outlived the local Ray instance: %s", len(killed), killed)
    _on_local_instance = False
    if kept is not None and warm > 0:
        prestart.keep_warm(kept.address, kept.pid, warm)


def end_left() -> list[int]:
    """SIGKILL the instance of the command's own that :func:`disconnect` left for the process's
    end: its raylet, GCS, agents and workers, none of which has anything left to do (the
    driver's files are written, its exit functions have run). Returns the pids killed. Called
    by the ``tuner`` command last, before its process ends. Where it is not (a Ctrl-C during
    the exit functions ends the process at once), the kernel kills the raylet and the GCS with
    the process that started them (Ray starts them so), and the workers end with the raylet,
    but for one whose function left a thread running. Linux only (:func:`reaping.supported`):
    elsewhere :func:`disconnect` shuts Ray down as it always did."""
    left = list(_left)
    _left.clear()
    return reaping.reap(left)


def is_client() -> bool:
    """True when connected through Ray Client (``ray://``): Tune then runs on the head node
    and our progress callback cannot print here."""
    import ray

    return bool(ray.util.client.ray.is_connected())
