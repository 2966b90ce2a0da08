"""Reproducible measurements behind BENCHMARKS.md.

    python -m benchmarks NAME [--quick] [--out DIR]

Each benchmark prints its figures, writes ``DIR/NAME.json`` (figures, sizes, the command,
the machine and its load) and ``DIR/NAME.png`` (default ``DIR``: ``benchmarks/out/``), and has
a ``--quick`` size that finishes in well under a minute (the CI smoke test runs those).

===============  ================================================================
name             measures
===============  ================================================================
quickstart       ``sweeps/quickstart.yaml`` as ``tuner run`` runs it
asha             ASHA vs full-budget random search on the same configurations
bn_rungs         precise BN statistics and ASHA's rung decisions: rank correlation of
                 rung scores with the final score; ASHA's defaults vs full budget
random_grid      random vs grid search at equal budget (one important parameter)
bn_lr            how many learning rates reach 90% of the best, with and without BN
orchestration    sweep wall time vs Σ(trial compute)/CPUs and vs a plain Ray Tune script;
                 the scale run of one-second trials
refine_rounds    a 3-round sweep: every round in one experiment (now) vs an experiment a round
startup          ``tuner run`` end to end vs the same sweep in one Optuna process
                 (``benchmarks/optuna_peer.py``); where the seconds before the first trial go
startup_ab       start-up changes, each against itself undone: the quickstart on
                 ``tuner up``'s instance, alternated
first_epoch      a fresh process to its first epoch, torch.optim's optimizers vs
                 ``tuner.models.optim``'s (no ``torch._dynamo`` import)
driver_scale     the driver's CPU a trial and efficiency from 200 to 10,000 sleeping trials,
                 beside a plain Ray Tune script
driver_ab        the driver's own changes (TensorBoard without threads, trainable lookups
                 cached), each against itself undone, alternated in one process
checkpoint_cost  a trial checkpointing every epoch (before) vs by its cost (now)
result_batching  a trial sending each result alone (before) vs in batches (now)
trial_speed      samples/s of ``models.train.Trainer`` vs a bare PyTorch loop
function_overhead a user's loop through ``run.report`` (in process, on Ray Tune) vs bare
diabetes         the tuned BN-MLP of ``sweeps/diabetes_mlp.yaml`` vs LinearRegression (test R²)
mnist1d_table    tuned (BN) MLP and CNN on MNIST-1D, re-tested over 5 seeds, beside
                 the published baselines
===============  ================================================================
"""

from __future__ import annotations

BENCHMARKS = (
    "quickstart",
    "asha",
    "bn_rungs",
    "random_grid",
    "bn_lr",
    "orchestration",
    "driver_scale",
    "driver_ab",
    "startup",
    "startup_ab",
    "first_epoch",
    "refine_rounds",
    "checkpoint_cost",
    "result_batching",
    "trial_speed",
    "function_overhead",
    "diabetes",
    "mnist1d_table",
)
