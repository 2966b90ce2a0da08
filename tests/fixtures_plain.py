"""Trial functions of a module that does not import torch (a scikit-learn user's, say): what
the trial's process had imported when the function ran, and the threads torch gets there."""

from __future__ import annotations

import os
import sys
from typing import Any


def torch_free_fit(config: dict[str, Any], run: Any) -> None:
    """Report, each epoch, whether torch was imported in this process when the function began,
    and the thread count torch would take (``OMP_NUM_THREADS``); ``import_torch`` set: import
    it and report the threads it took instead. Also the worker's process id."""
    loaded = "torch" in sys.modules
    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if config.get("import_torch"):
        import torch

        threads = torch.get_num_threads()
    for epoch in range(int(config["epochs"])):
        run.report(
            {
                "score": float(epoch) + float(config["x"]),
                "torch_loaded": int(loaded),
                "threads_seen": threads,
                "worker_pid": os.getpid(),
            }
        )
