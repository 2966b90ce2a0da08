"""tuner: hyperparameter sweeps of PyTorch batch-norm networks on Ray Tune."""

from __future__ import annotations

__version__ = "0.1.0"
