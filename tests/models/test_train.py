from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from tuner.models.data import load
from tuner.models.train import Trainer, make_optimizer, recompute_bn_stats

TRAIN = {"epochs": 4, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "seed": 0}
MLP = {"name": "mlp", "hidden": [16]}


@pytest.fixture(scope="module")
def data():
    return load({"name": "synthetic", "n_samples": 400, "n_features": 8, "n_classes": 3, "seed": 0})


def test_training_learns(data) -> None:
    t = Trainer(MLP, TRAIN, data, device="cpu")
    first = t.step()
    for _ in range(3):
        last = t.step()
    assert set(first) == {"train_loss", "val_loss", "val_acc"}
    # the last epoch of the budget also measures the held-out split, when the data holds it
    assert t.epoch == 4 and set(last) == {"train_loss", "val_loss", "val_acc", "test_loss", "test_acc"}
    assert last["train_loss"] < first["train_loss"]
    assert last["val_acc"] > 0.6


def test_same_seed_same_run_and_other_seed_differs(data) -> None:
    a = [Trainer(MLP, TRAIN, data, device="cpu").step() for _ in range(2)]
    assert a[0] == a[1]
    b = Trainer(MLP, {**TRAIN, "seed": 1}, data, device="cpu").step()
    assert b["train_loss"] != a[0]["train_loss"]


def test_restored_state_continues_exactly(data) -> None:
    straight = Trainer(MLP, TRAIN, data, device="cpu")
    for _ in range(3):
        expected = straight.step()
    first = Trainer(MLP, TRAIN, data, device="cpu")
    first.step(), first.step()
    state = first.state_dict()
    resumed = Trainer(MLP, {**TRAIN, "seed": 99}, data, device="cpu")  # a fresh process would re-seed anyway
    resumed.load_state_dict(state)
    got = resumed.step()
    assert got == expected
    for p, q in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(p, q)  # BN running statistics included


def test_huge_learning_rate_without_bn_diverges(data) -> None:
    t = Trainer(
        {"name": "mlp", "hidden": [16], "batch_norm": False}, {**TRAIN, "lr": 1e6, "momentum": 0.0}, data, device="cpu"
    )
    results = list(t.epochs(3))
    assert not math.isfinite(results[-1]["train_loss"]) and results[-1].keys() == {"train_loss", "val_loss", "val_acc"}
    assert all(math.isnan(results[-1][k]) for k in ("val_loss", "val_acc"))
    assert all(math.isfinite(r["train_loss"]) for r in results[:-1])  # nothing is trained past the divergence


def test_cosine_schedule_decays_the_rate(data) -> None:
    t = Trainer(MLP, {**TRAIN, "lr_schedule": "cosine"}, data, device="cpu")
    rates = []
    for _ in range(4):
        t.step()
        rates.append(t.optimizer.param_groups[0]["lr"])
    assert rates[0] == pytest.approx(0.05)
    assert rates == sorted(rates, reverse=True) and rates[-1] < 0.05 * 0.2


def test_optimizers_and_unknown_names() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(params, {"optimizer": "adam", "lr": 0.1}), torch.optim.Adam)
    opt = make_optimizer(params, {"optimizer": "adamw", "lr": 0.1, "beta1": 0.8, "beta2": 0.95})
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.8, 0.95)
    assert make_optimizer(params, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.7}).param_groups[0]["momentum"] == 0.7
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(params, {"optimizer": "lion", "lr": 0.1})


def test_amp_on_cpu_warns_and_trains_in_float32(data) -> None:
    with pytest.warns(UserWarning, match="mixed precision needs CUDA"):
        t = Trainer(MLP, {**TRAIN, "amp": True}, data, device="cpu")
    assert not t.amp and math.isfinite(t.step()["train_loss"])


def test_final_training_uses_train_and_val(data) -> None:
    t = Trainer(MLP, TRAIN, data, device="cpu", final=True)
    assert len(t.x_train) == len(data.x_train) + len(data.x_val)


def test_evaluate_on_given_arrays(data) -> None:
    t = Trainer(MLP, TRAIN, data, device="cpu")
    m = t.evaluate(data.x_test, data.y_test, prefix="test_")
    assert m["test_loss"] > 0 and 0.0 <= m["test_acc"] <= 1.0


# -- precise BN statistics ---------------------------------------------------------------------


def bn_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3, momentum=0.1), torch.nn.ReLU())


def test_recompute_bn_stats_is_the_equal_weight_average_of_batch_statistics() -> None:
    net = bn_net().eval()
    batches = [torch.randn(8, 4) * (i + 1) + i for i in range(5)]
    weight = net[0].weight.clone()
    assert recompute_bn_stats(net, batches) == 5
    z = [net[0](x) for x in batches]
    bn = net[1]
    # Wu & Johnson's precise BN: the batches' means and (unbiased) variances averaged with equal weights
    assert torch.allclose(bn.running_mean, torch.stack([b.mean(0) for b in z]).mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, torch.stack([b.var(0) for b in z]).mean(0), atol=1e-4)
    assert not net.training and bn.momentum == 0.1  # the mode and the layer's momentum are restored
    assert torch.equal(net[0].weight, weight)  # no weight changes


def test_recompute_bn_stats_takes_loader_pairs_and_stops_at_max_batches() -> None:
    net = bn_net().train()
    batches = [torch.randn(8, 4) + i for i in range(4)]
    pairs = ((x, torch.zeros(len(x))) for x in batches)  # what a DataLoader yields
    assert recompute_bn_stats(net, pairs, max_batches=2) == 2
    expected = torch.stack([net[0](x).mean(0) for x in batches[:2]]).mean(0)
    assert torch.allclose(net[1].running_mean, expected, atol=1e-5)
    assert net.training and int(net[1].num_batches_tracked) == 2


def test_recompute_bn_stats_gives_each_module_its_own_mode_back() -> None:
    net = torch.nn.Sequential(bn_net(), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3)).train()
    net[2].eval()  # a frozen layer in a training model, as in fine-tuning
    recompute_bn_stats(net, [torch.randn(8, 4) for _ in range(2)])
    assert [m.training for m in net.modules()] == [True, True, True, True, True, True, False]
    net.eval()
    net[1].train()
    recompute_bn_stats(net, [torch.randn(8, 4)])
    assert [m.training for m in net.modules()] == [False, False, False, False, False, True, False]


def test_recompute_bn_stats_on_a_lazy_layer_before_its_first_batch_is_one_clear_error() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LazyBatchNorm1d())
    with pytest.raises(ValueError, match="BN layer '1' is lazy and has not seen a batch yet"):
        recompute_bn_stats(net, [torch.randn(8, 4)])
    net(torch.randn(8, 4))  # now it has its size
    assert recompute_bn_stats(net, [torch.randn(8, 4)]) == 1


def test_recompute_bn_stats_without_bn_reads_nothing() -> None:
    def never() -> Iterator[torch.Tensor]:
        raise AssertionError("the batches were read")
        yield torch.zeros(1)

    assert recompute_bn_stats(torch.nn.Linear(4, 3), never()) == 0
    untracked = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3, track_running_stats=False))
    assert recompute_bn_stats(untracked, never()) == 0


@pytest.mark.parametrize(
    ("batches", "max_batches", "message"),
    [
        ([], None, "held no batch"),
        ([torch.randn(8, 4)], 0, "max_batches: 0 must be >= 1"),
        ([torch.randn(8, 4), torch.randn(1, 4)], None, "more than 1 value per channel"),  # BN cannot use one sample
    ],
)
def test_recompute_bn_stats_errors_leave_the_statistics_as_they_were(batches, max_batches, message) -> None:
    net = bn_net()
    recompute_bn_stats(net, [torch.randn(8, 4) + 3])
    net.eval()
    before = {k: v.clone() for k, v in net[1].state_dict().items()}
    with pytest.raises(ValueError, match=message):
        recompute_bn_stats(net, batches, max_batches=max_batches)
    assert all(torch.equal(before[k], v) for k, v in net[1].state_dict().items())
    assert not net.training and net[1].momentum == 0.1


def test_precise_bn_changes_the_validation_not_the_training(data) -> None:
    plain = Trainer(MLP, TRAIN, data, device="cpu")
    precise = Trainer(MLP, {**TRAIN, "precise_bn": 3}, data, device="cpu")
    assert plain.bn_batches == [] and len(precise.bn_batches) == 3
    for _ in range(2):
        a, b = plain.step(), precise.step()
        assert a["train_loss"] == b["train_loss"]  # the same weights: precise BN trains nothing
        assert a["val_loss"] != b["val_loss"]
    for p, q in zip(plain.model.parameters(), precise.model.parameters()):
        assert torch.equal(p, q)
    # what it validated with: the statistics of its 3 fixed batches under the current weights
    bn = precise.model.blocks[0].bn
    first = precise.model.blocks[0].linear
    expected = torch.stack([first(precise.x_train[i]).mean(0) for i in precise.bn_batches]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert b == {**b, **precise.evaluate()}


def test_precise_bn_batches_are_capped_by_the_data(data) -> None:
    t = Trainer(MLP, {**TRAIN, "precise_bn": 10_000}, data, device="cpu")
    assert sum(len(i) for i in t.bn_batches) == len(t.x_train)  # every training sample once, no more


def wrong_width(input_shape: tuple[int, ...], num_outputs: int) -> torch.nn.Module:
    """A user's model function whose network expects other inputs than the data's."""
    return torch.nn.Linear(input_shape[0] + 3, num_outputs)


def wrong_outputs(input_shape: tuple[int, ...], num_outputs: int) -> torch.nn.Module:
    """A user's model function whose network has other outputs than the data's classes."""
    return torch.nn.Linear(input_shape[0], num_outputs + 5)


@pytest.mark.parametrize(
    ("function", "rule"),
    [
        ("wrong_width", r"wrong_width: the network it returned fails on a batch of shape \(2, 8\): RuntimeError"),
        ("wrong_outputs", r"wrong_outputs: the network it returned maps a batch of shape \(2, 8\) to .* \(2, 8\)"),
        ("not_a_module", r"not_a_module returned str, not a torch.nn.Module"),
    ],
)
def test_a_user_network_that_does_not_fit_the_data_is_refused_before_training(data, function: str, rule: str) -> None:
    from tuner.models import ModelError

    module = "tests.fixtures_data" if function == "not_a_module" else __name__
    with pytest.raises(ModelError, match=rule):
        Trainer({"name": f"{module}:{function}"}, TRAIN, data, device="cpu")
    ok = Trainer({"name": "tests.fixtures_data:tiny_net"}, TRAIN, data, device="cpu")  # a fitting one trains
    assert ok.model.training and math.isfinite(ok.step()["train_loss"])


class _NoParameters(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), 3)


def no_parameters(input_shape: tuple[int, ...], num_outputs: int) -> torch.nn.Module:
    """A user's network with nothing to train."""
    return _NoParameters()


def frozen(input_shape: tuple[int, ...], num_outputs: int) -> torch.nn.Module:
    """A user's network whose parameters are all frozen."""
    net = torch.nn.Linear(input_shape[0], num_outputs)
    net.requires_grad_(False)
    return net


class _IntegerInTraining(torch.nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out.long().float() if self.training else out  # no gradient flows out in training mode


def integer_in_training(input_shape: tuple[int, ...], num_outputs: int) -> torch.nn.Module:
    return _IntegerInTraining(input_shape[0], num_outputs)


def one_argument(input_shape: tuple[int, ...]) -> torch.nn.Module:
    return torch.nn.Linear(input_shape[0], 3)


@pytest.mark.parametrize(
    ("function", "rule"),
    [
        ("no_parameters", r"no_parameters: the network it returned has nothing to train \(it has no parameters\)"),
        (
            "frozen",
            r"frozen: the network it returned has nothing to train \(all 2 of its parameters have requires_grad",
        ),
        ("one_argument", r"one_argument cannot be called as one_argument\(input_shape, num_outputs\): too many"),
    ],
)
def test_a_user_network_with_nothing_to_train_is_refused_before_training(data, function: str, rule: str) -> None:
    from tuner.models import ModelError

    with pytest.raises(ModelError, match=rule):
        Trainer({"name": f"{__name__}:{function}"}, TRAIN, data, device="cpu")


def test_a_user_network_whose_training_output_carries_no_gradient_is_its_error_at_the_first_batch(data) -> None:
    from tuner.models import ModelError

    trainer = Trainer({"name": f"{__name__}:integer_in_training"}, TRAIN, data, device="cpu")  # eval mode is fine
    with pytest.raises(ModelError, match=r"integer_in_training: the network's output in training mode does not"):
        trainer.step()
