from __future__ import annotations

import pytest
import torch
from torch import nn

from tuner.models import build_model
from tuner.models.cnn import CNN, CNNConfig


def test_1d_input_gets_conv1d_blocks_without_bias_before_bn() -> None:
    net = CNN(CNNConfig(input_shape=(1, 40), num_outputs=10, channels=(8, 16), bn_momentum=0.2))
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(convs) == 2 and len(bns) == 2
    assert all(c.bias is None for c in convs)
    assert all(b.momentum == 0.2 and b.affine for b in bns)
    assert convs[0].kernel_size == (5,)
    assert net(torch.randn(3, 1, 40)).shape == (3, 10)


def test_2d_input_gets_conv2d_blocks() -> None:
    net = CNN(CNNConfig(input_shape=(1, 8, 8), num_outputs=10, channels=(4, 8)))
    assert any(isinstance(m, nn.Conv2d) for m in net.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_vector_input_is_a_one_channel_sequence() -> None:
    net = build_model({"name": "cnn", "hidden": [4]}, (12,), 3)
    assert net(torch.randn(2, 12)).shape == (2, 3)


def test_without_bn_convs_have_biases() -> None:
    net = CNN(CNNConfig(input_shape=(1, 40), num_outputs=10, channels=(8,), batch_norm=False))
    assert not any(isinstance(m, nn.BatchNorm1d) for m in net.modules())
    assert all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv1d))


def test_sizing_the_head_leaves_running_statistics_untouched() -> None:
    net = CNN(CNNConfig(input_shape=(1, 8, 8), num_outputs=10, channels=(4,)))
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn.running_mean, torch.zeros(4)) and int(bn.num_batches_tracked) == 0
    assert net.training


def test_eval_mode_prediction_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    net = CNN(CNNConfig(input_shape=(1, 8, 8), num_outputs=10, channels=(4, 8)))
    for _ in range(5):
        net(torch.randn(32, 1, 8, 8) * 2 + 1)
    net.eval()
    sample = torch.randn(1, 1, 8, 8)
    assert torch.allclose(net(sample), net(torch.cat([sample, torch.randn(15, 1, 8, 8) * 5]))[:1], atol=1e-6)


def test_bad_input_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="neither"):
        CNN(CNNConfig(input_shape=(1, 2, 3, 4), num_outputs=2))


def test_user_model_function_and_its_errors() -> None:
    net = build_model({"name": "tests.fixtures_data:tiny_net", "kwargs": {"width": 3}}, (5,), 2)
    assert net(torch.randn(4, 5)).shape == (4, 2)
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        build_model({"name": "tests.fixtures_data:not_a_module"}, (5,), 2)
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"name": "resnet"}, (5,), 2)
