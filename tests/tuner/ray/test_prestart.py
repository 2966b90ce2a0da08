"""Trial processes started ahead: where it applies, and that a trial's actor takes one."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tuner.ray import prestart, reaping
from tuner.ray.nodes import trial_slots


def test_trial_slots_count_what_fits_at_once() -> None:
    assert trial_slots(1, 0, {"CPU": 8.0}, 0, 100) == 8
    assert trial_slots(2, 0, {"CPU": 7.0}, 0, 100) == 3
    assert trial_slots(1, 0.5, {"CPU": 8.0, "GPU": 1.0}, 0, 100) == 2  # GPUs bind first
    assert trial_slots(1, 0, {"CPU": 8.0}, 3, 100) == 3  # max_concurrent
    assert trial_slots(1, 0, {"CPU": 8.0}, 0, 5) == 5  # the sweep's trials
    assert trial_slots(4, 0, {"CPU": 2.0}, 0, 5) == 1  # at least one
    assert trial_slots(0, 0, {}, 0, 5) == 1


def test_it_applies_only_on_one_local_node_with_no_code_shipped_and_nothing_to_hand_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE

    from tuner.ray import tune_patches

    for name in ENV_VARS_TO_PROPAGATE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CA_BUNDLE", "/etc/ssl/certs/ca.crt")  # not handed over by Tune
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)
    assert prestart.applies(None) and prestart.applies({})
    assert not prestart.applies({"working_dir": "/tmp/code"})
    for name in sorted(ENV_VARS_TO_PROPAGATE):  # each of Ray Tune's own list, read without Ray Tune
        monkeypatch.setenv(name, "1")
        assert not prestart.applies(None), name
        monkeypatch.delenv(name)
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: False)  # a cluster
    assert not prestart.applies(None)
    assert prestart.prestart(2) == 0
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)
    assert prestart.prestart(0) == 0


@pytest.mark.skipif(not reaping.supported(), reason="reads the raylet's processes from Linux's /proc")
@pytest.mark.usefixtures("ray_session")
def test_a_plain_actor_takes_a_worker_started_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The raylet starts the workers at once, and an actor with no runtime environment of its
    own (as tune_patches.plain_trial_processes makes a trial's) runs in an idle one, not in a
    process started for it."""
    import ray
    from ray.tune.execution.class_cache import ENV_VARS_TO_PROPAGATE

    from tuner.ray import tune_patches

    for name in ENV_VARS_TO_PROPAGATE:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tune_patches, "one_local_node", lambda: True)
    node = ray._private.worker.global_worker.node
    raylet = _raylet_pid(node)
    before = set(prestart.idle_pids(raylet))
    assert prestart.prestart(1) == 1
    deadline = time.monotonic() + 30
    while not (set(prestart.idle_pids(raylet)) - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = set(prestart.idle_pids(raylet)) - before
    assert started, "the raylet started no worker ahead"

    @ray.remote(num_cpus=1)
    class Plain:
        def pid(self) -> int:
            return os.getpid()

    actor = Plain.remote()  # type: ignore[attr-defined]
    try:
        # one of the idle workers (those started before, by this session's earlier runs, are of
        # the same job and as good), not a process started for it
        assert ray.get(actor.pid.remote(), timeout=60) in started | before
    finally:
        ray.kill(actor)


def _raylet_pid(node: Any) -> int:
    from ray._private import ray_constants

    return int(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)


def test_a_worker_whose_preload_fails_still_starts() -> None:
    """Ray imports tuner.ray.warm in every worker of tuner up's instance as it starts: an import
    of it that fails (torch broken, say) must not end the worker, only leave the import to the
    trial, which reports it."""
    import subprocess
    import sys

    code = "import sys\nsys.modules['tuner.models.train'] = None\nimport tuner.ray.warm\nprint('started')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "started", done.stderr
    assert prestart.WARM_MODULE == "tuner.ray.warm"


def test_keep_warm_asks_only_for_what_is_not_idle_already(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, int, Any, int]] = []
    monkeypatch.setattr(prestart, "_request", lambda *a: asked.append(a))
    monkeypatch.setattr(prestart, "idle_workers", lambda group: 2)

    class Node:
        node_manager_address = "10.0.0.1"
        node_manager_port = 4321

    class Gcs:
        def __init__(self, nodes: int) -> None:
            self.nodes = nodes

        def get_all_node_info(self, timeout: float) -> dict[int, Node]:
            return {i: Node() for i in range(self.nodes)}

    from tuner.ray import auth

    monkeypatch.setattr(auth, "gcs_client", lambda address: Gcs(1))
    assert prestart.keep_warm("127.0.0.1:6379", 99, 2) == 0 and not asked  # two idle already
    assert prestart.keep_warm("127.0.0.1:6379", 99, 5) == 3
    assert asked == [("10.0.0.1:4321", 3, None, prestart.WARM_KEEP_ALIVE_S)]  # bound to no job
    monkeypatch.setattr(auth, "gcs_client", lambda address: Gcs(2))  # a node joined: not one machine
    assert prestart.keep_warm("127.0.0.1:6379", 99, 5) == 0 and len(asked) == 1

    def refused(*a: Any) -> None:
        raise RuntimeError("the raylet refused")

    monkeypatch.setattr(auth, "gcs_client", lambda address: Gcs(1))
    monkeypatch.setattr(prestart, "_request", refused)
    assert prestart.keep_warm("127.0.0.1:6379", 99, 5) == 0  # logged; the next run starts its own

    monkeypatch.setattr(prestart, "_request", lambda *a: asked.append(a))
    monkeypatch.setattr(reaping, "supported", lambda: False)
    assert prestart.keep_warm("127.0.0.1:6379", 99, 5) == 0 and len(asked) == 1  # no /proc: none kept, none piled up
