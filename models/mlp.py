"""A multi-layer perceptron with batch normalization.

References:
- S. Ioffe, C. Szegedy, "Batch Normalization: Accelerating Deep Network Training by
  Reducing Internal Covariate Shift", ICML 2015. https://arxiv.org/abs/1502.03167

Each hidden block computes z[l] = W[l] a[l-1] (no bias: BN's learned shift β replaces it),
normalises z[l] over the mini-batch, scales by γ and shifts by β, then applies ReLU.
At test time (``model.eval()``) BN uses its exponentially-weighted running mean and
variance instead of the batch's, so a sample's prediction does not depend on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class LinearBlock(nn.Module):
    """Linear -> BatchNorm1d -> ReLU, or Linear(+bias) -> ReLU without BN."""

    def __init__(self, d_in: int, d_out: int, batch_norm: bool, bn_momentum: float) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=not batch_norm)
        # affine=True: γ (weight) and β (bias) are learned; momentum is torch's: the weight
        # of the newest batch in the running averages, i.e. 1 - β of that average.
        self.bn = nn.BatchNorm1d(d_out, momentum=bn_momentum) if batch_norm else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d_in) -> (B, d_out)
        return self.act(self.bn(self.linear(x)))


@dataclass
class MLPConfig:
    input_dim: int  # flattened input size
    num_outputs: int  # classes (logits), or regression targets
    hidden: tuple[int, ...] = (100, 100)  # width of each hidden block
    batch_norm: bool = True  # True: Linear(no bias) -> BN -> ReLU; False: Linear(bias) -> ReLU, the baseline
    bn_momentum: float = 0.1  # torch semantics: weight of the newest batch in BN's running averages


class MLP(nn.Module):
    """Flatten, hidden blocks, then a linear classifier producing logits (or regression outputs)."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        widths = (config.input_dim, *config.hidden)
        self.blocks = nn.Sequential(
            *[LinearBlock(a, b, config.batch_norm, config.bn_momentum) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.head = nn.Linear(widths[-1], config.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *input_shape) -> (B, num_outputs)
        return self.head(self.blocks(x.flatten(1)))
