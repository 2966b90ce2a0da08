"""GPU evidence: a BN-CNN sweep with one GPU per trial and with a quarter GPU per trial.

    python benchmarks/gpu_sweep.py --out OUT [--trials 12]

Runs on a machine with an NVIDIA GPU. It measures (1) the training loop's samples/second
on CUDA in float32 and with ``train.amp`` (bf16 autocast), and (2) the shipped MNIST-1D BN-CNN
sweep (random search, every trial its full budget) with ``resources.gpu`` 1 and 0.25:
wall time, trials/hour, GPU utilisation (nvidia-smi, sampled every 0.5 s) and whether every
trial trained on CUDA. Prints the figures and writes ``OUT/gpu_sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class GpuSampler:
    """Samples GPU utilisation (%) and memory (MiB) with nvidia-smi in a thread."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.samples, self._stop = every_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
            )
            if out.returncode == 0 and out.stdout.strip():
                util, mem = out.stdout.strip().splitlines()[0].split(",")
                self.samples.append((float(util), float(mem)))
            self._stop.wait(self.every_s)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        utils = [u for u, _ in self.samples] or [0.0]
        return {
            "util_mean_pct": statistics.mean(utils),
            "util_max_pct": max(utils),
            "mem_max_mib": max((m for _, m in self.samples), default=0.0),
            "samples": len(self.samples),
        }


def loop_speed(amp: bool, device: str = "cuda") -> dict[str, float]:
    """Samples/second of models.train.Trainer on ``device`` (MNIST-1D, BN-CNN)."""
    import torch

    from tuner.models.data import load
    from tuner.models.train import Trainer

    data = load({"name": "mnist1d", "val_fraction": 0.2})
    train = {"epochs": 10, "batch_size": 128, "optimizer": "adamw", "lr": 3e-3, "seed": 0, "amp": amp}
    t = Trainer({"name": "cnn", "hidden": [32, 64, 64], "kernel_size": 5}, train, data, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t.train_epoch()  # warm-up (cuDNN autotune, allocator)
    sync()
    start = time.perf_counter()
    for _ in range(5):
        t.train_epoch()
    sync()
    seconds = time.perf_counter() - start
    return {"samples_per_s": 5 * len(data.x_train) / seconds, "val_acc_after_6_epochs": t.evaluate()["val_acc"]}


def sweep(gpu: float, trials: int, storage: Path, amp: bool = False) -> dict[str, Any]:
    import yaml

    from tuner.runner import run_sweep
    from tuner.spec import from_dict

    raw = yaml.safe_load((ROOT / "sweeps" / "mnist1d_cnn.yaml").read_text())
    raw["name"] = f"gpu-{gpu:g}" + ("-amp" if amp else "")
    raw["search"].update(method="random", num_samples=trials, max_concurrent=0)
    raw["scheduler"] = {"name": "none"}
    raw["resources"] = {"cpu": 1, "gpu": gpu}
    raw["train"]["amp"] = amp
    with GpuSampler() as sampler:
        start = time.perf_counter()
        summary = run_sweep(
            from_dict(raw, source="sweeps/mnist1d_cnn.yaml"),
            storage=storage,
            write=lambda line: print("   ", line, flush=True),
            progress_every_s=10,
        )
        wall = time.perf_counter() - start
    run = summary.run
    devices = sorted({str(t.history[-1].get("device", "?")) for t in run.trials if t.history})
    best = run.ranked()[0]
    return {
        "gpu_per_trial": gpu,
        "amp": amp,
        "trials": len(run.trials),
        "wall_s": wall,
        "trials_per_hour": len(run.trials) / wall * 3600,
        "epochs": sum(t.epochs for t in run.trials),
        "best_val_acc": best.score("val_acc"),
        "trial_devices": devices,
        **sampler.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--trials", type=int, default=12)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import ray
    import torch

    result: dict[str, Any] = {
        "gpu": subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip(),
        "torch": str(torch.__version__),
        "cuda": str(torch.version.cuda),
        "ray": ray.__version__,
    }
    print(json.dumps(result), flush=True)
    result["loop_fp32"] = loop_speed(amp=False)
    result["loop_amp_bf16"] = loop_speed(amp=True)
    print("loop:", result["loop_fp32"], result["loop_amp_bf16"], flush=True)
    storage = Path("/tmp/tuner-gpu-runs")
    result["sweeps"] = []
    for gpu, amp in ((1.0, False), (0.25, False), (0.25, True)):
        r = sweep(gpu, args.trials, storage, amp=amp)
        print("sweep:", json.dumps(r), flush=True)
        result["sweeps"].append(r)
    one, quarter = result["sweeps"][0], result["sweeps"][1]
    result["quarter_vs_one_trials_per_hour"] = quarter["trials_per_hour"] / one["trials_per_hour"]
    (out / "gpu_sweep.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
