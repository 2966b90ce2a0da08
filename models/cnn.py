"""A convolutional network with batch normalization, 1-D for sequences and 2-D for images.

References:
- S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015. https://arxiv.org/abs/1502.03167
- S. Greydanus, "Scaling down Deep Learning" (MNIST-1D), 2020. https://arxiv.org/abs/2011.14439

Each block computes z[l] = conv(a[l-1]) without a bias (BN's β replaces it), normalises
z[l] per channel over the mini-batch and positions, scales by γ, shifts by β, applies ReLU,
then halves the resolution with max pooling while it is at least 4 wide. The blocks end
in a flatten and a linear classifier. Inputs ``(C, L)`` get Conv1d, ``(C, H, W)`` Conv2d,
and a plain vector ``(F,)`` is read as a one-channel sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class ConvBlock(nn.Module):
    """Conv -> BatchNorm -> ReLU -> MaxPool(2) (the pool only while the input is >= 4 wide)."""

    def __init__(
        self, dims: int, c_in: int, c_out: int, kernel_size: int, batch_norm: bool, bn_momentum: float, pool: bool
    ) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        bn = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        pooling = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        self.conv = conv(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
        self.bn = bn(c_out, momentum=bn_momentum) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.pool = pooling(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c_in, *S) -> (B, c_out, *S')
        return self.pool(self.act(self.bn(self.conv(x))))


@dataclass
class CNNConfig:
    input_shape: tuple[int, ...]  # (F,), (C, L) or (C, H, W) without the batch dimension
    num_outputs: int  # classes (logits), or regression targets
    channels: tuple[int, ...] = (32, 32)  # output channels of each conv block
    kernel_size: int | None = None  # None: 5 for 1-D inputs, 3 for 2-D inputs (odd: 'same' padding)
    batch_norm: bool = True  # True: Conv(no bias) -> BN -> ReLU; False: Conv(bias) -> ReLU, the baseline
    bn_momentum: float = 0.1  # torch semantics: weight of the newest batch in BN's running averages


class CNN(nn.Module):
    """Conv blocks, flatten, linear classifier producing logits (or regression outputs)."""

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        shape = tuple(config.input_shape)
        if len(shape) == 1:
            shape = (1, shape[0])
        if len(shape) not in (2, 3):
            raise ValueError(f"cnn: input shape {config.input_shape} is neither (C, L) nor (C, H, W)")
        self.in_shape = shape
        dims = len(shape) - 1
        k = config.kernel_size or (5 if dims == 1 else 3)
        blocks, c, size = [], shape[0], min(shape[1:])
        for c_out in config.channels:
            pool = size >= 4
            blocks.append(ConvBlock(dims, c, c_out, k, config.batch_norm, config.bn_momentum, pool))
            c, size = c_out, size // 2 if pool else size
        self.blocks = nn.Sequential(*blocks)
        self.blocks.eval()  # eval: the dummy pass that sizes the head must not touch BN's running stats
        with torch.no_grad():
            n_flat = self.blocks(torch.zeros(1, *shape)).flatten(1).shape[1]
        self.blocks.train()
        self.head = nn.Linear(n_flat, config.num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *input_shape) -> (B, num_outputs)
        x = x.reshape(x.shape[0], *self.in_shape)
        return self.head(self.blocks(x).flatten(1))
