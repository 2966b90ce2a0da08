"""Start-up changes, each against itself undone: the quickstart on ``tuner up``'s instance, or
on an instance of the command's own for the changes of :data:`OWN_INSTANCE`.

``tuner run sweeps/quickstart.yaml`` from a fresh interpreter, alternated A B A B with the
change undone in B (a prelude run before tuner's entry point), the data cache warm: wall time,
the share of it with no trial running, and the wait from the experiment's start to the first
trial's (``startup.run_tuner``). The changes:

- ``callbacks``: no usage tag of the experiment's callbacks (``tune_patches.callbacks_untagged``)
  against Ray Tune's tag, which imports its MLflow integration and mlflow with it where mlflow
  is installed.
- ``driver_imports``: tensorboardX imported without boto3 (``callbacks._UNUSED_BY_TENSORBOARDX``),
  and Optuna and pydantic's v1 fields imported in the background with Ray Tune
  (``startup.PRELOADED``), against both imported on the driver's main thread as the experiment
  starts, before Tune asks for its first trial's process.
- ``prestart``: the first trials' processes started as soon as the driver has joined
  (``tuner.ray.prestart``) against started when Tune asks for the trials' actors.
- ``plain_processes``: trial processes started with no runtime environment of their own
  (``tune_patches.plain_trial_processes``) against Ray Tune's ``PL_DISABLE_FORK`` one, which Ray
  starts through ``setup_worker.py`` (a second Python start and Ray's runtime-environment code).
- ``agent_ports`` (an instance of the command's own): the raylet told its agents' ports before it
  starts (``head._agent_ports_told``) against waiting for the agents to report them.
- ``monitors`` (an instance of the command's own): no autoscaler monitor and no log monitor
  (``head._monitors_left_out``) against both started.
- ``idle_agent`` (an instance of the command's own): a stand-in for a dashboard agent that
  would load no module (``head._idle_agent_command``) against Ray's agent.
- ``leave_kept``: the ``tuner`` command leaves ``tuner up``'s instance without Ray's shutdown
  (``cluster.disconnect(process_ends=True)``) against with it.
- ``reap_grace`` (an instance of the command's own): what outlives the instance killed right
  after Ray's shutdown (``reaping.reap``) against a tenth of a second after.
- ``task_events`` (an instance of the command's own): no task events (``head.SYSTEM_CONFIG``)
  against Ray's, which every process sends to the GCS each second and the driver's shutdown
  waits to flush.
- ``lean_head`` (an instance of the command's own): the three above together against none of them.
- ``connect_retry`` (an instance of the command's own): Ray's processes try a local socket again
  after 10 ms (``settings.SETTINGS``) and ``ray.init`` asks for its raylet once it has registered
  (``head._raylet_registered``), against Ray's second between tries and its first ask at 0.1 s.
- ``raylet_end`` (an instance of the command's own): Ray's shutdown waits a tenth of a second
  for the raylet after SIGTERM, then SIGKILLs it (``head.ended_quickly``), against Ray's second.
- ``left_to_exit`` (an instance of the command's own): the ``tuner`` command leaves its instance
  running for its exit functions and kills it whole just before its process ends
  (``cluster.end_left``), against Ray's shutdown first (with ``raylet_end``).
- ``deferred`` (an instance of the command's own): pandas, Ray Data, ``requests`` and
  ``jsonschema`` deferred to their first use in the driver and in every trial process
  (:mod:`tuner.ray.deferred`), against loaded by Ray's and Ray Tune's imports.
- ``entry`` (an instance of the command's own): ``requests`` and ``jsonschema`` deferred too,
  in the trial processes by a hook installed before their ``import ray`` (:mod:`tuner.ray.entry`),
  against pandas and Ray Data alone, deferred by Ray's preload.
- ``grace`` (an instance of the command's own): Ray's tenth of a second of grace after it
  starts the raylet skipped once the raylet is known registered (``head._GraceSkipped``),
  against slept.
- ``port_poll`` (an instance of the command's own): ``ray.init`` looks for the GCS's port file
  every ``head.PORT_POLL_MS`` against Ray's 100 ms.

Default: 3 runs of each. Quick: the 4-trial × 2-epoch sweep of ``startup``, once.
``TUNER_STARTUP_AB=callbacks,driver_imports``: the changes to measure; ``TUNER_STARTUP_AB_RUNS=5``: runs of each.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import yaml

from benchmarks.common import ROOT, Context
from benchmarks.startup import ray_instance_up, run_tuner, settle, sweep, warm_cache

UNDONE = {
    "callbacks": "import contextlib\nimport tuner.ray.tune_patches as tp\n"
    "tp.callbacks_untagged = lambda: contextlib.nullcontext()",
    # tuner.ray.callbacks imports Ray Tune: its constant is set as it is imported, not before
    "driver_imports": """
import importlib.abc, importlib.util, sys
import tuner.startup
tuner.startup.PRELOADED = ("tuner.ray.experiment",)
class Undo(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tuner.ray.callbacks":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module._UNUSED_BY_TENSORBOARDX = ("torch",)
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Undo())
""",
    "prestart": "import tuner.ray.prestart as p\np.prestart = lambda count, runtime_env=None: 0",
    "plain_processes": "import contextlib\nimport tuner.ray.tune_patches as tp\n"
    "tp.plain_trial_processes = lambda: contextlib.nullcontext()",
    "agent_ports": "import tuner.ray.head as h\nh._agent_ports_told = lambda node, minimal: None",
    "monitors": "import tuner.ray.head as h\nh._monitors_left_out = lambda node: None",
    "idle_agent": "import tuner.ray.head as h\nh._idle_agent_command = lambda command, minimal: command",
    "leave_kept": "import tuner.ray.cluster as c\nleave = c.disconnect\n"
    "c.disconnect = lambda process_ends=False: leave()",
    "reap_grace": "import tuner.ray.reaping as r\nr.reap.__defaults__ = (0.1,)",
    "task_events": "import tuner.ray.head as h\nh.SYSTEM_CONFIG = {}",
    "connect_retry": "import tuner.ray.head as h, tuner.ray.settings as s\n"
    "s.TOGETHER = ()\n"
    "for k in ('RAY_raylet_client_connect_timeout_milliseconds', 'RAY_raylet_client_num_connect_attempts'):\n"
    "    s.SETTINGS.pop(k)\n"
    "h._raylet_registered = lambda gcs_client, node_id, wait_s=0: True",
    "raylet_end": "import contextlib\nimport tuner.ray.head as h\nh.ended_quickly = contextlib.nullcontext",
    "left_to_exit": "import tuner.ray.cluster as c\n_disconnect = c.disconnect\n"
    "c.disconnect = lambda process_ends=False: _disconnect(False)",
    "deferred": "import sys\nimport tuner.ray.deferred as d, tuner.ray.head as h\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, d._Finder)]\n"
    "h.worker_command = lambda command: command",
    "entry": "import tuner.ray.deferred as d, tuner.ray.head as h\n"
    "d.DEFERRED = ('pandas', 'ray.data')\n"
    "h.worker_command = lambda command: command\n"
    "h.SYSTEM_CONFIG = {**h.SYSTEM_CONFIG, 'preload_python_modules': ['tuner.ray.deferred']}",
    "grace": "import tuner.ray.head as h\nh.RAY_GRACE_S = -1.0",
    "port_poll": "import tuner.ray.head as h\nh.PORT_POLL_MS = 100",
}
UNDONE["lean_head"] = "\n".join(UNDONE[change] for change in ("monitors", "agent_ports", "idle_agent"))
OWN_INSTANCE = {
    "agent_ports",
    "monitors",
    "idle_agent",
    "reap_grace",
    "task_events",
    "lean_head",
    "connect_retry",
    "raylet_end",
    "left_to_exit",
    "deferred",
    "grace",
    "port_poll",
    "entry",
}  # changes to how a command starts an instance of its own


def run(ctx: Context) -> dict[str, Any]:
    changes = [c for c in os.environ.get("TUNER_STARTUP_AB", ",".join(UNDONE)).split(",") if c]
    unknown = [c for c in changes if c not in UNDONE]
    if unknown:
        raise SystemExit(f"TUNER_STARTUP_AB: {unknown[0]!r} is not one of {', '.join(UNDONE)}")
    runs = 1 if ctx.quick else int(os.environ.get("TUNER_STARTUP_AB_RUNS", "3"))
    if ctx.quick:
        sweep_file = ctx.storage("sweep") / "startup.yaml"
        sweep_file.write_text(yaml.safe_dump(sweep(4, 2), sort_keys=False))
    else:
        sweep_file = ROOT / "sweeps" / "quickstart.yaml"
    kept, own = ctx.storage("cache"), ctx.storage("cache-own")  # tuner up's instance recorded / none
    for cache in (kept, own):
        warm_cache(cache, [sweep_file])
    out: dict[str, Any] = {"sizes": {"sweep": sweep_file.name, "runs": runs}}
    up = contextlib.nullcontext("") if set(changes) <= OWN_INSTANCE else ray_instance_up(kept, os.cpu_count() or 2)
    with up:
        for change in changes:
            cache = own if change in OWN_INSTANCE else kept
            rows: dict[str, list[dict[str, Any]]] = {"now": [], "undone": []}
            for rep in range(runs):
                for way, prelude in (("now", "pass"), ("undone", UNDONE[change])):
                    if cache is kept:
                        settle(kept)  # the workers it keeps warm started, as for a user's next run
                    r = run_tuner(ctx, sweep_file, f"{change}-{way}-{rep}", cache, prelude=prelude)
                    r["first_trial_wait_s"] = r["phases_s"]["first_trial_wait"]
                    r["ray_start_s"] = r["phases_s"]["ray_start"]
                    rows[way].append(r)
                    ctx.say(
                        f"{change} {way:<7} {r['wall_s']:.1f}s, no trial running {r['idle_share']:.0%}, "
                        f"first trial {r['first_trial_wait_s']:.2f}s after the experiment's start, "
                        f"Ray's start {r['ray_start_s']:.2f}s"
                    )
            mean = {
                way: {
                    k: sum(r[k] for r in rs) / len(rs)
                    for k in ("wall_s", "idle_share", "first_trial_wait_s", "ray_start_s")
                }
                for way, rs in rows.items()
            }
            ctx.say(
                f"{change}: wall {mean['now']['wall_s']:.1f}s against {mean['undone']['wall_s']:.1f}s undone "
                f"({mean['now']['wall_s'] / mean['undone']['wall_s']:.2f}); no trial running "
                f"{mean['now']['idle_share']:.0%} against {mean['undone']['idle_share']:.0%}; first trial "
                f"{mean['now']['first_trial_wait_s']:.2f}s against {mean['undone']['first_trial_wait_s']:.2f}s; "
                f"Ray's start {mean['now']['ray_start_s']:.2f}s against {mean['undone']['ray_start_s']:.2f}s"
            )
            out[change] = {"rows": rows, "mean": mean}
    return out
