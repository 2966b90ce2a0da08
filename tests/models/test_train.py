from __future__ import annotations

import math

import pytest
import torch

from tuner.models.data import load
from tuner.models.train import Trainer, make_optimizer

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
