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
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 60  # the raylet keeps an idle prestarted worker this long (then as any idle one)

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
    """Ask the local raylet to start ``count`` worker processes for this job now; returns how
    many were asked for (0 where it does not apply, or the raylet did not take the request:
    the trials then start their processes as Ray always does)."""
    if count < 1 or not applies(runtime_env):
        return 0
    try:
        import ray
        from ray._private.grpc_utils import init_grpc_channel  # with Ray's token, as Ray's own clients
        from ray.core.generated import common_pb2, node_manager_pb2, node_manager_pb2_grpc, runtime_environment_pb2

        worker = ray._private.worker.global_worker
        node = worker.node
        channel = init_grpc_channel(f"{node.node_ip_address}:{node.node_manager_port}")
        try:
            node_manager_pb2_grpc.NodeManagerServiceStub(channel).PrestartWorkers(
                node_manager_pb2.PrestartWorkersRequest(
                    language=common_pb2.PYTHON,
                    job_id=worker.current_job_id.binary(),
                    runtime_env_info=runtime_environment_pb2.RuntimeEnvInfo(serialized_runtime_env="{}"),
                    keep_alive_duration_secs=KEEP_ALIVE_S,
                    num_workers=count,
                ),
                timeout=5,
            )
        finally:
            channel.close()
    except Exception:  # Ray's internals moved, or the raylet refused: Ray starts the workers later
        log.warning("could not start trial processes ahead", exc_info=True)
        return 0
    return count
