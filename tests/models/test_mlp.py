from __future__ import annotations

import torch
from torch import nn

from tuner.models import build_model
from tuner.models.mlp import MLP, MLPConfig


def test_bn_block_is_linear_without_bias_then_bn_then_relu() -> None:
    net = MLP(MLPConfig(input_dim=10, num_outputs=3, hidden=(7, 5), batch_norm=True, bn_momentum=0.05))
    blocks = list(net.blocks)
    assert len(blocks) == 2
    for block, width in zip(blocks, (7, 5)):
        assert block.linear.bias is None  # BN's β replaces the bias
        assert isinstance(block.bn, nn.BatchNorm1d) and block.bn.num_features == width
        assert block.bn.momentum == 0.05
        assert block.bn.affine and block.bn.weight.requires_grad and block.bn.bias.requires_grad  # γ and β learned
        assert block.bn.track_running_stats
    assert net.head.bias is not None
    assert net(torch.randn(4, 10)).shape == (4, 3)


def test_without_bn_the_same_net_has_biases_and_no_bn() -> None:
    net = MLP(MLPConfig(input_dim=10, num_outputs=3, hidden=(7, 5), batch_norm=False))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in net.modules())
    assert all(b.linear.bias is not None for b in net.blocks)


def test_mlp_flattens_any_input_shape() -> None:
    net = build_model({"name": "mlp", "hidden": [4]}, (1, 8, 8), 10)
    assert net(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_bn_normalises_z_over_the_batch_in_training() -> None:
    net = MLP(MLPConfig(input_dim=6, num_outputs=2, hidden=(32,)))
    block = net.blocks[0]
    x = torch.randn(256, 6) * 5 + 3
    z = block.bn(block.linear(x))  # γ=1, β=0 at init: z is normalised
    assert torch.allclose(z.mean(0), torch.zeros(32), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(32), atol=1e-3)


def test_eval_mode_prediction_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    net = MLP(MLPConfig(input_dim=6, num_outputs=4, hidden=(16, 16)))
    net.train()
    for _ in range(5):  # move the running statistics away from their initial values
        net(torch.randn(64, 6) * 3 + 1)
    net.eval()
    sample = torch.randn(1, 6)
    alone = net(sample)
    in_batch = net(torch.cat([sample, torch.randn(31, 6) * 10]))[:1]
    assert torch.allclose(alone, in_batch, atol=1e-6)
