"""The built-in trainer's optimizers: torch.optim's update step for step, torch.optim's state,
and no ``torch._dynamo`` in a process that trains with them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tuner.models import optim

SHAPES = [(3, 4), (4,), (2, 3, 2)]


def params(seed: int, device: str = "cpu") -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).to(device).requires_grad_() for s in SHAPES]


def pair(
    kind: str, options: dict[str, Any], seed: int, foreach: bool | None = False, device: str = "cpu"
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """(ours, torch.optim's single- or multi-tensor path) over two equal sets of parameters."""
    theirs = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    ours = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW}[kind]
    return ours(params(seed, device), **options), theirs(params(seed, device), **options, foreach=foreach)


def same(a: torch.optim.Optimizer, b: torch.optim.Optimizer, close: bool = False) -> None:
    """Parameters and state equal (``close``: to ``rtol`` 1e-6, where another device's kernels
    may round differently)."""

    def check(x: torch.Tensor, y: torch.Tensor) -> bool:
        return torch.allclose(x, y, rtol=1e-6, atol=1e-7) if close else torch.equal(x, y)

    for p, q in zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True):
        assert check(p, q), (p - q).abs().max()
        assert a.state[p].keys() == b.state[q].keys()
        for key, value in a.state[p].items():
            assert check(value, b.state[q][key]), key


def step_both(a: torch.optim.Optimizer, b: torch.optim.Optimizer, seed: int, lr: float | None = None) -> None:
    g = torch.Generator().manual_seed(seed)
    for opt in (a, b):
        opt.zero_grad(set_to_none=True)
    for i, (p, q) in enumerate(zip(a.param_groups[0]["params"], b.param_groups[0]["params"], strict=True)):
        if (seed + i) % 5 == 0:
            continue  # a parameter without a gradient this step (unused in this batch): left alone
        grad = torch.randn(p.shape, generator=g).to(p.device)
        p.grad, q.grad = grad.clone(), grad.clone()
    if lr is not None:  # a schedule sets the rate between steps, as the trainer's cosine does
        a.param_groups[0]["lr"] = b.param_groups[0]["lr"] = lr
    a.step()
    b.step()


rates = st.floats(1e-4, 1.0)
decays = st.sampled_from([0.0, 1e-4, 0.05])
sgd = st.fixed_dictionaries(
    {"lr": rates, "momentum": st.sampled_from([0.0, 0.5, 0.99]), "weight_decay": decays, "maximize": st.booleans()}
).flatmap(
    lambda o: (
        st.just(o)
        if o["momentum"] == 0
        else st.sampled_from([{}, {"nesterov": True}, {"dampening": 0.3}]).map(lambda extra: {**o, **extra})
    )
)
adam = st.fixed_dictionaries(
    {
        "lr": rates,
        "betas": st.tuples(st.sampled_from([0.0, 0.8, 0.9]), st.sampled_from([0.9, 0.999])),
        "eps": st.sampled_from([1e-8, 1e-3]),
        "weight_decay": decays,
        "maximize": st.booleans(),
    }
)


def check_step_for_step(
    kind: str, options: dict[str, Any], seed: int, schedule: list[float | None], foreach: bool
) -> None:
    a, b = pair(kind, options, seed, foreach)
    for i, lr in enumerate(schedule):
        step_both(a, b, seed + i, lr)
        same(a, b)


schedules = st.lists(st.one_of(st.none(), rates), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(options=sgd, seed=st.integers(0, 2**16), schedule=schedules, foreach=st.booleans())
def test_sgd_is_torch_optims_step_for_step(options: dict[str, Any], seed: int, schedule: list, foreach: bool) -> None:
    check_step_for_step("sgd", options, seed, schedule, foreach)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["adam", "adamw"]),
    options=adam,
    seed=st.integers(0, 2**16),
    schedule=schedules,
    foreach=st.booleans(),
)
def test_adam_and_adamw_are_torch_optims_step_for_step(
    kind: str, options: dict[str, Any], seed: int, schedule: list, foreach: bool
) -> None:
    check_step_for_step(kind, options, seed, schedule, foreach)


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_state_dicts_load_into_torch_optims_and_back(kind: str) -> None:
    options = {"lr": 0.1, "weight_decay": 0.01, **({"momentum": 0.9} if kind == "sgd" else {})}
    ours, theirs = pair(kind, options, 0, foreach=None)  # torch's default: its groups say None, as ours
    for i in range(3):
        step_both(ours, theirs, i)
    # each continues from the other's state: the checkpoints of older runs (torch.optim's) load here
    a, b = pair(kind, options, 1, foreach=None)
    with torch.no_grad():
        for p, q, src, dst in zip(
            a.param_groups[0]["params"],
            b.param_groups[0]["params"],
            theirs.param_groups[0]["params"],
            ours.param_groups[0]["params"],
            strict=True,
        ):
            p.copy_(src), q.copy_(dst)
    a.load_state_dict(copy.deepcopy(theirs.state_dict()))  # as a checkpoint file: no shared tensors
    b.load_state_dict(copy.deepcopy(ours.state_dict()))
    assert type(a) is type(ours) and json.dumps(ours.state_dict()["param_groups"]) == json.dumps(
        a.state_dict()["param_groups"]
    )
    step_both(a, theirs, 7)
    same(a, theirs)
    step_both(ours, b, 7)
    same(ours, b)


def test_they_are_torch_optimizers_for_schedulers_and_hooks() -> None:
    opt = optim.SGD(params(0), lr=1.0, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD) and isinstance(optim.AdamW(params(0)), torch.optim.AdamW)
    seen = []
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append(o.param_groups[0]["lr"]))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    assert seen == [1.0, 0.5, 0.25]
    assert optim.AdamW(params(0)).param_groups[0]["weight_decay"] == 1e-2  # torch's AdamW default


def test_what_they_do_not_implement_is_refused() -> None:
    opt = optim.Adam(params(0), lr=0.1)
    state = opt.state_dict()
    state["param_groups"][0]["amsgrad"] = True  # a torch.optim checkpoint with AMSGrad on
    opt.load_state_dict(state)
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    with pytest.raises(RuntimeError, match="AMSGrad"):
        opt.step()
    emb = torch.nn.Embedding(4, 2, sparse=True)
    sparse = optim.SGD(emb.parameters(), lr=0.1)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        sparse.step()


def test_training_with_them_never_imports_torch_dynamo() -> None:
    """A fresh process trains, checkpoints and restores with the built-in trainer: what a trial's
    worker does before its first report. torch.optim's first step imports torch._dynamo."""
    script = textwrap.dedent(
        """
        import io, sys, torch
        from tuner.models.data import load
        from tuner.models.train import Trainer
        data = load({"name": "synthetic", "n_samples": 200, "n_features": 8, "n_classes": 3, "seed": 0})
        for opt in ("sgd", "adam", "adamw"):
            train = {"epochs": 2, "batch_size": 32, "optimizer": opt, "lr": 0.05, "momentum": 0.9,
                     "precise_bn": 2, "lr_schedule": "cosine"}
            t = Trainer({"name": "mlp", "hidden": [16]}, train, data, device="cpu")
            list(t.epochs())
            buf = io.BytesIO()
            torch.save(t.state_dict(), buf)
            buf.seek(0)
            Trainer({"name": "cnn", "hidden": [4]}, train, data, device="cpu").step()
            t.load_state_dict(torch.load(buf, weights_only=False))
        print("torch._dynamo" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("foreach", [None, False])  # torch's default on CUDA is multi-tensor
def test_on_cuda_they_are_torch_optims_step_for_step(kind: str, foreach: bool | None) -> None:
    """On a GPU torch.optim takes its multi-tensor path by default: ours must step as it does there."""
    options = {
        "sgd": [{"lr": 0.1}, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}],
        "adam": [{"lr": 0.01}, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.05, "maximize": True}],
        "adamw": [{"lr": 0.01}, {"lr": 0.01, "eps": 1e-3, "weight_decay": 0.05}],
    }[kind]
    for opts in options:
        a, b = pair(kind, opts, 3, foreach, device="cuda")
        for step in range(6):
            step_both(a, b, step)
        assert a.param_groups[0]["params"][0].device.type == "cuda"
        same(a, b, close=True)
