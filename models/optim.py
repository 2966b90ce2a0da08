"""SGD, Adam and AdamW that never import ``torch._dynamo``: the built-in trainer's optimizers.

torch.optim guards its optimizers' ``step``, ``zero_grad``, ``add_param_group``,
``state_dict`` and ``load_state_dict`` for ``torch.compile``, and the guard imports
``torch._dynamo`` on its first call: 1.5-2 s of CPU in every fresh process before its first
training step. A sweep starts one such process per concurrent trial (on a laptop, all on the
same few cores), and a retest or the final model one more each.

The classes here *are* torch.optim's (``isinstance`` holds, LR schedulers and step hooks work,
``state_dict`` is theirs, so a checkpoint of either loads into the other) with those methods
unguarded and ``step`` written out: the arithmetic of torch's single-tensor update, one
parameter at a time (``tests/models/test_optim.py`` checks them step for step against
torch.optim). The same ``make_optimizer`` serves a user's own trial function.

Under ``torch.compile`` use torch.optim's own optimizers: these give the compiler no graph
breaks around the update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.optim import Optimizer

__all__ = ["SGD", "Adam", "AdamW"]

F = TypeVar("F", bound=Callable[..., Any])


def _unguarded(method: F) -> F:
    """``method`` without torch's compile guard (the function the guard wraps); the method
    itself in a torch release that does not guard it."""
    try:
        from torch._compile import _disable_dynamo

        guard = _disable_dynamo(lambda: None).__code__  # the guard's wrapper, for any function
    except (ImportError, AttributeError):  # pragma: no cover - a torch without the guard
        return method
    wrapped = getattr(method, "__wrapped__", None)
    return wrapped if getattr(method, "__code__", None) is guard and wrapped is not None else method


class _Unguarded:
    """Optimizer's guarded methods, unguarded (first in the subclasses' method order)."""

    add_param_group = _unguarded(Optimizer.add_param_group)
    zero_grad = _unguarded(Optimizer.zero_grad)
    state_dict = _unguarded(Optimizer.state_dict)
    load_state_dict = _unguarded(Optimizer.load_state_dict)


def _scalar(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _grad(p: torch.Tensor, maximize: bool, optimizer: str) -> torch.Tensor:
    if p.grad.is_sparse:  # type: ignore[union-attr]
        raise RuntimeError(f"{optimizer} does not support sparse gradients; use torch.optim's")
    return -p.grad if maximize else p.grad  # type: ignore[operator,return-value]


class SGD(_Unguarded, torch.optim.SGD):
    """``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay, maximize) without its
    compile guards."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=False,
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, wd = _scalar(group["lr"]), group["weight_decay"]
            momentum, dampening, nesterov = group["momentum"], group["dampening"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = _grad(p, group["maximize"], "SGD")
                if wd != 0:
                    grad = grad.add(p, alpha=wd)
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                    grad = grad.add(buf, alpha=momentum) if nesterov else buf
                p.add_(grad, alpha=-lr)
        return loss


def _adam_step(optimizer: torch.optim.Adam, closure: Callable[[], float] | None, decoupled: bool) -> float | None:
    """Adam's update; AdamW's (the weights decay, not the gradient) when ``decoupled``."""
    loss = None
    if closure is not None:
        with torch.enable_grad():
            loss = closure()
    scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    for group in optimizer.param_groups:
        lr, wd, eps = _scalar(group["lr"]), group["weight_decay"], group["eps"]
        beta1, beta2 = (_scalar(b) for b in group["betas"])
        if group.get("amsgrad"):
            raise RuntimeError(f"{type(optimizer).__name__}: no AMSGrad here; use torch.optim's")
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = _grad(p, group["maximize"], type(optimizer).__name__)
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=scalar_dtype)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq, step_t = state["exp_avg"], state["exp_avg_sq"], state["step"]
            step_t += 1
            if wd != 0:
                if decoupled:
                    p.mul_(1 - lr * wd)
                else:
                    grad = grad.add(p, alpha=wd)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = step_t.item()
            step_size = lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)
    return loss


class Adam(_Unguarded, torch.optim.Adam):
    """``torch.optim.Adam`` (weight decay added to the gradient, maximize; no AMSGrad) without
    its compile guards."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=False
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        return _adam_step(self, closure, decoupled=False)


class AdamW(_Unguarded, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay, maximize; no AMSGrad) without its compile
    guards."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize, foreach=False
        )

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        return _adam_step(self, closure, decoupled=True)
