"""The example's own networks: a module named ``models``, as many ML projects have one.

tuner's own networks are installed as ``tuner.models``, so this file never shadows them, and
tuner never shadows it: ``train.py`` imports it as plain ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class BNRegressor(nn.Module):
    """An MLP whose hidden layers normalise their pre-activations (Linear -> BatchNorm -> ReLU)
    and end in one linear output per target: ``(B, features)`` -> ``(B, targets)``."""

    def __init__(self, features: int, targets: int, hidden: Sequence[int], bn_momentum: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = features
        for h in hidden:
            # no bias before BN: its shift (beta) takes the bias's place
            layers += [nn.Linear(width, int(h), bias=False), nn.BatchNorm1d(int(h), momentum=bn_momentum), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, targets))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))
