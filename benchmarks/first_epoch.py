"""A fresh process to its first epoch: torch.optim's optimizers against ``tuner.models.optim``'s.

What every trial worker, retest task and final model pays before it trains: each command is a
fresh interpreter that imports torch, builds the quickstart's BN-MLP on MNIST-1D and trains one
epoch with the built-in trainer. Before: its optimizer is torch.optim's, whose first call
imports ``torch._dynamo``; now: ``tuner.models.optim``'s (the same update, unguarded).
Alternated A B A B; figures: each one's seconds to the end of the first epoch (and of the
process), and whether ``torch._dynamo`` was imported.

Full size: 5 runs each. Quick: 1 run each.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
from typing import Any

from benchmarks.common import ROOT, Context

SCRIPT = textwrap.dedent(
    """
    import json, time
    t0 = time.perf_counter()
    import sys
    import torch
    import tuner.models.train as train
    from tuner.models.data import load
    if sys.argv[1] == "torch.optim":  # what make_optimizer built before
        train.optim = torch.optim
    torch.set_num_threads(1)
    data = load({"name": "mnist1d", "val_fraction": 0.2})
    t1 = time.perf_counter()
    config = {"epochs": 20, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
              "weight_decay": 1e-4, "lr_schedule": "cosine"}
    trainer = train.Trainer({"name": "mlp", "hidden": [256, 256]}, config, data, device="cpu")
    trainer.step()
    t2 = time.perf_counter()
    print(json.dumps({"imports_and_data_s": t1 - t0, "first_epoch_s": t2 - t1, "to_first_epoch_s": t2 - t0,
                      "dynamo": "torch._dynamo" in sys.modules}))
    """
)

WAYS = ("torch.optim", "tuner.models.optim")


def one(way: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, way], capture_output=True, text=True, cwd=ROOT, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{way} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(ctx: Context) -> dict[str, Any]:
    runs = 1 if ctx.quick else 5
    one(WAYS[1])  # the data set generated into the cache, once, before anything is timed
    rows: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for i in range(runs):
        for way in WAYS:
            rows[way].append(one(way))
            r = rows[way][-1]
            ctx.say(
                f"run {i + 1}, {way}: first epoch {r['first_epoch_s']:.2f}s, from the start "
                f"{r['to_first_epoch_s']:.2f}s (torch._dynamo imported: {r['dynamo']})"
            )
    medians = {way: statistics.median(r["to_first_epoch_s"] for r in rows[way]) for way in WAYS}
    saved = medians[WAYS[0]] - medians[WAYS[1]]
    ctx.say(
        f"median from the start to the end of the first epoch: {medians[WAYS[0]]:.2f}s before, "
        f"{medians[WAYS[1]]:.2f}s now ({saved:.2f}s less a process)"
    )
    return {"runs": runs, "rows": rows, "median_to_first_epoch_s": medians, "saved_s": saved}
