"""cluster.yaml (AWS) and cluster-local.yaml (on-premises) against Ray's own cluster schema,
offline: ``prepare_config`` fills in the provider's defaults from the files Ray ships (no
cloud call, no boto3) and ``validate_config`` checks the result against ``ray-schema.json``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parent.parent


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_the_cluster_configs_pass_rays_schema(name: str) -> None:
    config = prepare_config(copy.deepcopy(load(name)))
    validate_config(config)
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "bin/ray start" in c]
    assert len(ray_starts) == 2 and all("RAY_AUTH_MODE=token" in c for c in ray_starts)
    head = next(c for c in ray_starts if "--head" in c)
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in " ".join(starts)
    # the token reaches every node where Ray looks for it; the project is installed everywhere
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/tuner-cluster-token"
    assert config["file_mounts"]["~/tuner"] == "."
    assert any("scripts/bootstrap.py" in c for c in config["setup_commands"])
    assert all("~/tuner/.venv/bin/ray" in c for c in ray_starts)


def test_the_aws_cluster_autoscales_gpu_workers_and_opens_ssh_only() -> None:
    config = prepare_config(copy.deepcopy(load("cluster.yaml")))
    types = config["available_node_types"]
    assert types["head"]["resources"] == {"CPU": 0} and types["head"]["max_workers"] == 0
    gpu = types["gpu_worker"]
    assert gpu["resources"]["GPU"] == 1 and gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    # no ingress rule of our own: Ray's security group allows SSH and the cluster's own nodes only
    assert "IpPermissions" not in config["provider"]["security_group"]
    assert any("tuner.nodetypes" in c for c in config["head_start_ray_commands"])
    assert any("boto3" in c for c in config["head_setup_commands"])


def test_the_schema_check_catches_a_broken_config() -> None:
    config = load("cluster.yaml")
    config["max_wokers"] = 4
    with pytest.raises(jsonschema.ValidationError, match="max_wokers"):
        validate_config(prepare_config(copy.deepcopy(config)))
    local = load("cluster-local.yaml")
    del local["provider"]["head_ip"]
    with pytest.raises(Exception):  # noqa: B017 - Ray's own check of a manual cluster raises its own kinds
        validate_config(prepare_config(local))
