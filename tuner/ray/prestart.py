"""Trial processes started ahead: the local raylet starts the sweep's first worker processes
as soon as the driver has joined, while the driver still sets the experiment up.

A trial's actor needs a worker process: Python started, Ray imported and connected (about
1 s of CPU on a laptop core) before the trial's own imports. Ray starts it only when Tune asks
for the actor, after the driver has imported Ray Tune and set the experiment up; on a laptop
the driver then leaves a core idle for a second or more. Ray's raylet can start workers for a
job ahead of any request (its ``PrestartWorkers`` call, which Ray uses for its own first
driver), and an actor with no runtime environment takes such an idle worker
(:func:`tuner.ray.tune_patches.plain_trial_processes` gives trial actors none). Measured in
BENCHMARKS.md i.

Only where it pays and cannot go wrong: one local machine (its raylet is the driver's), no
code shipped to the workers (a runtime environment would make the workers unmatched), and
nothing of the driver's for Ray Tune to hand over. A worker left unused ends with the job.

The instance ``tuner up`` keeps goes further: its workers import Ray Tune, tuner's trial side
and torch as they start (:mod:`tuner.ray.warm`), and every command that leaves it (and ``tuner
up`` itself) leaves that many workers started and idle for the next run, bound to no job
(:func:`keep_warm`). A run that finds them idle asks for no more.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 60  # the raylet keeps an idle prestarted worker this long (then as any idle one)
WARM_KEEP_ALIVE_S = 3600  # and one kept warm for the next run (within the instance's CPUs, longer)
WARM_MODULE = "tuner.ray.warm"  # preloaded by every worker of tuner up's instance
slots_wanted = 0  # the trials the last run of this process ran at once (what keep_warm leaves)

# What Ray Tune may hand to a trial's process from the driver's environment (its
# ENV_VARS_TO_PROPAGATE, tune_patches.handed_over), read here without importing Ray Tune, which
# is still being imported in the background when the driver asks: its AWS credentials by name,
# Ray Train's settings by prefix. A trial actor given any of them has a runtime environment of
# its own and would not take a prestarted worker.
_HANDED_OVER = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN")
_HANDED_OVER_PREFIXES = ("RAY_TRAIN_", "TRAIN_", "TORCHFT_", "NCCL_RAS_", "RAY_CHDIR_", "RAY_WARN_BLOCKING")


def applies(runtime_env: dict[str, object] | None) -> bool:
    """Whether prestarted workers would be taken by the trials: a local instance of one node,
    no code shipped, nothing for Ray Tune to hand over."""
    from tuner.ray.tune_patches import one_local_node

    if runtime_env or any(name in _HANDED_OVER or name.startswith(_HANDED_OVER_PREFIXES) for name in os.environ):
        return False
    return one_local_node()


def prestart(count: int, runtime_env: dict[str, object] | None = None) -> int:
    """Ask the local raylet to start ``count`` worker processes for this job now, less those
    kept warm and idle on ``tuner up``'s instance; returns how many were asked for (0 where it
    does not apply, or the raylet did not take the request: the trials then start their
    processes as Ray always does)."""
    global slots_wanted
    slots_wanted = max(count, 0)
    if count < 1 or not applies(runtime_env):
        return 0
    from tuner.ray import cluster

    kept = cluster.kept_instance()
    if kept is not None:
        count -= idle_workers(kept.pid)
        if count < 1:
            return 0
    try:
        import ray

        worker = ray._private.worker.global_worker
        node = worker.node
        _request(
            f"{node.node_ip_address}:{node.node_manager_port}", count, worker.current_job_id.binary(), KEEP_ALIVE_S
        )
    except Exception:  # Ray's internals moved, or the raylet refused: Ray starts the workers later
        log.warning("could not start trial processes ahead", exc_info=True)
        return 0
    return count


def keep_warm(address: str, ray_start: int, count: int) -> int:
    """Leave ``count`` idle workers, bound to no job, on the instance ``tuner up`` keeps at
    ``address`` (its ``ray start`` process is ``ray_start``): as many as are idle already
    are not asked for again. Returns how many were asked for; 0 on any failure (logged): the
    next run starts its own."""
    from tuner.ray import reaping

    if count < 1 or not reaping.supported():  # idle workers cannot be counted: none left
        return 0
    try:
        count -= idle_workers(ray_start)
        if count < 1:
            return 0
        from tuner.ray import auth

        nodes = list(auth.gcs_client(address).get_all_node_info(timeout=10).values())
        if len(nodes) != 1:  # a node joined it: no longer one machine
            return 0
        _request(f"{nodes[0].node_manager_address}:{nodes[0].node_manager_port}", count, None, WARM_KEEP_ALIVE_S)
    except Exception:
        log.warning("could not keep workers warm on tuner up's instance", exc_info=True)
        return 0
    return count


def _request(raylet: str, count: int, job_id: bytes | None, keep_alive_s: int) -> None:
    """The raylet's ``PrestartWorkers`` call, with Ray's token (as Ray's own clients make it):
    ``count`` Python workers of no runtime environment, for ``job_id`` (None: any job)."""
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc, runtime_environment_pb2

    request = node_manager_pb2.PrestartWorkersRequest(
        language=common_pb2.PYTHON,
        runtime_env_info=runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env="{}"),
        keep_alive_duration_secs=keep_alive_s,
        num_workers=count,
    )
    if job_id is not None:
        request.job_id = job_id
    channel = init_grpc_channel(raylet)
    try:
        node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(request, timeout=5)
    finally:
        channel.close()


def idle_workers(ray_start: int) -> int:
    """How many idle worker processes the instance of ``ray_start`` has (:func:`idle_pids`)."""
    return len(idle_pids(ray_start))


def idle_pids(ray_start: int) -> list[int]:
    """The idle worker processes (Ray names them ``ray::IDLE``) under the ``ray start`` process
    ``ray_start`` (tuner up's: its raylet's workers), read from Linux's /proc; none elsewhere."""
    from tuner.ray import reaping

    return sorted(pid for pid, _ in reaping.processes(ray_start) if reaping.command(pid).startswith("ray::IDLE"))
