"""What every worker process of an instance tuner starts imports as it starts, before it takes
any work (Ray's ``preload_python_modules``): Ray Tune, whose class every trial's actor is, and
the trial's side of tuner (:data:`PRELOADED`). A trial's actor then reaches a worker that has
them, instead of waiting ~1 s of a laptop core for them.

The instance ``tuner up`` keeps imports torch and the built-in trainer as well
(:data:`WITH_TORCH`, where its environment sets ``prestart.WARM_TORCH_ENV``): its workers are started
ahead of any run and left idle for the next (:func:`tuner.ray.prestart.keep_warm`), so their
imports cost a run nothing. An instance of the command's own starts its workers as the run
starts, and there torch's import (~1.5 s of a core) held the first trial back more than it
saved it (BENCHMARKS.md i).

An import that fails here is left to fail where it is needed, in the trial, with its error
there: a worker whose preload raised would never start.
"""

from __future__ import annotations

import importlib
import os

from tuner.ray.prestart import WARM_TORCH_ENV

# the trial actor's class (Ray Tune) and the trial's function (run_trial), which imports no torch
PRELOADED = ("ray.tune", "tuner.ray.worker")
# the built-in trainer, and torch with it
WITH_TORCH = ("tuner.models.train",)

for _name in PRELOADED + (WITH_TORCH if os.environ.get(WARM_TORCH_ENV) == "1" else ()):
    try:
        importlib.import_module(_name)
    except Exception:  # imported again by the trial, which reports it
        continue
