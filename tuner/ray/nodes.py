"""What a cluster holds and what its autoscaler can add: its live nodes, the node types it
reports (KubeRay does; a cluster made from this project's ``cluster.yaml`` publishes its own
with :func:`publish_node_types`), and whether one trial fits any of them."""

from __future__ import annotations

from typing import Any

from tuner.errors import InputError


def cluster_nodes() -> list[dict[str, Any]]:
    """The cluster's live nodes: id, address and resources."""
    import ray

    return [
        {"node_id": n["NodeID"], "address": n["NodeManagerAddress"], "resources": n["Resources"]}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def trial_slots(cpu: float, gpu: float, resources: dict[str, float], max_concurrent: int, trials: int) -> int:
    """Trials that fit ``resources`` at once (by CPUs, and GPUs when a trial asks for some), at
    most ``max_concurrent`` (0: no limit) and ``trials``, at least 1."""
    fits = [resources.get("CPU", 1.0) / cpu] if cpu > 0 else []
    if gpu > 0:
        fits.append(resources.get("GPU", 0.0) / gpu)
    n = int(min(fits)) if fits else 1
    if max_concurrent:
        n = min(n, max_concurrent)
    return max(1, min(n, trials))


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
