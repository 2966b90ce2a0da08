"""What every worker process of the instance ``tuner up`` keeps imports as it starts, before it
takes any work (Ray's ``preload_python_modules``): Ray Tune and the trial's side of tuner, with
torch. Such a worker, started ahead and idle (:func:`tuner.ray.prestart.keep_warm`), runs a
trial's first step a few tenths of a second after the trial's actor reaches it, instead of
after ~3 s of imports on a laptop core.

An import that fails here is left to fail where it is needed, in the trial, with its error
there: a worker whose preload raised would never start.
"""

from __future__ import annotations

import importlib

from tuner.ray import deferred  # noqa: F401  # first: Ray Tune's import without pandas and Ray Data

# the trial actor's class (Ray Tune), the trial's function (run_trial), the built-in trainer and torch
PRELOADED = ("ray.tune", "tuner.ray.worker", "tuner.models.train")

for _name in PRELOADED:
    try:
        importlib.import_module(_name)
    except Exception:  # imported again by the trial, which reports it
        continue
