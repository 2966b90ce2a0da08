"""Publish a cluster launcher config's node types to the running cluster, so that tuner (and
Ray) know which nodes its autoscaler can start before any of them runs.

    python -m tuner.nodetypes ~/ray_bootstrap_config.yaml      # on the head, after `ray start --head`

``cluster.yaml`` runs it on the head node. Without it, a sweep asking for GPUs on a cluster
whose GPU workers have all scaled down to zero would be refused at once (no live node has
a GPU, and a Ray cluster launcher autoscaler does not report its node types to the GCS).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tuner.nodetypes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="the cluster config the autoscaler runs with (~/ray_bootstrap_config.yaml)")
    parser.add_argument("--address", default="auto", help="the cluster (default: auto, the one on this machine)")
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    types = dict(config.get("available_node_types") or {})
    head = config.get("head_node_type")
    if head in types:  # the head is never started by the autoscaler
        types[head] = {**types[head], "max_workers": 0}
    from tuner.ray import cluster, joining, nodes

    cluster.connect(joining.resolve(args.address))
    nodes.publish_node_types(types, max_workers=config.get("max_workers"))
    for t in nodes.autoscaler_node_types():
        resources = dict(sorted(t["resources"].items()))  # Ray hands them back in no fixed order
        print(f"{t['name']}: {resources} (up to {t['max_count'] if t['max_count'] >= 0 else 'any number of'} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
