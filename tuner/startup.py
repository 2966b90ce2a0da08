"""A run's start, before it writes anything: the data, Ray, the first trials' processes, and
the imports the experiment needs made meanwhile in the background.

Most of a small sweep's fixed cost is here (BENCHMARKS.md i): :func:`preload` overlaps the
driver's imports with the data loading and Ray's start, :func:`tuner.ray.prestart.prestart`
starts the trials' processes while the driver sets up, and :func:`starting_line` tells the user
what the wait is, and how ``tuner up`` shortens it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tuner import datasets, rounds, usercode
from tuner.models.data import Dataset
from tuner.spec import Sweep

# What a run's driver imports as its experiment starts: Ray Tune (and pandas under it), Optuna
# for the run's journal (:mod:`tuner.journal`), and pydantic's v1 fields, which Ray imports as
# the driver puts its first object (the trials' arguments) to register a serializer for them.
PRELOADED = ("tuner.ray.experiment", "optuna.storages", "pydantic.v1.fields")


def preload() -> None:
    """Import :data:`PRELOADED` in the background (seconds on a laptop) while the data loads
    and Ray starts, which mostly wait on other processes; the imports the experiment makes
    later find them done (or wait on Python's import lock for the rest). One that fails here
    is left to fail where it is needed, with its error there."""
    import importlib
    import threading

    def imports() -> None:
        for name in PRELOADED:
            try:
                importlib.import_module(name)
            except Exception:  # imported again, and reported, where it is used
                continue

    threading.Thread(target=imports, daemon=True, name="tuner-preload").start()


def process_start() -> float:
    """When this process started (epoch seconds), from Linux's /proc to the clock's tick (its
    age: the system's uptime less the process's start in ticks since boot; /proc/stat's boot
    time is whole seconds, up to 1 s off); now where there is no /proc."""
    try:
        ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def prepare(
    sweep: Sweep, address: str | None, num_cpus: int | None, timings: dict[str, float] | None = None
) -> tuple[Dataset | None, dict[str, float], str | None]:
    """Everything a run needs before it writes anything: the data, Ray (the user's code shipped
    to every node), and a check that some node fits one trial.

    Raises:
        InputError: bad data, no cluster at ``address``, or no node that fits a trial.
    """
    from tuner.ray import cluster, nodes, prestart

    timings = {} if timings is None else timings
    usercode.add_to_path(sweep.base_dir)
    data = datasets.load(sweep)
    timings["data_loaded"] = time.time()
    env = usercode.runtime_env(sweep.code_refs(), sweep.base_dir)
    resources = cluster.connect(address, num_cpus=num_cpus, runtime_env=env or None)
    timings["ray_ready"] = time.time()
    slots = nodes.trial_slots(
        sweep.resources.cpu, sweep.resources.gpu, resources, sweep.search.max_concurrent, sum(rounds.plan(sweep))
    )
    prestart.prestart(slots, env)  # the first trials' processes start while the driver sets up
    note = nodes.check_resources(
        sweep.source, sweep.resources.cpu, sweep.resources.gpu, nodes.cluster_nodes(), nodes.autoscaler_node_types()
    )
    return data, resources, note


# What a run on an instance of its own says of the faster way: a run ends sooner on tuner up's
# instance, whose workers wait warm (how much: docs/cluster.md, BENCHMARKS.md i).
UP_HINT = "`tuner up` keeps one up between runs, and each run then starts seconds sooner"


def starting_line(address: str | None, kept: bool = False, num_cpus: int | None = None) -> str:
    """What the run waits for before its first trial (seconds: the data, Ray's processes);
    ``kept``: no address was asked for, so one is the instance ``tuner up`` keeps. An instance
    of the run's own is said with :data:`UP_HINT`, unless it was asked for (``num_cpus``)."""
    if address is None:
        return "loading the data, starting Ray" + (f" ({UP_HINT})" if num_cpus is None else "")
    return f"loading the data, connecting to Ray at {address}" + (" (the instance tuner up keeps)" if kept else "")
