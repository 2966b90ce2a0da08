"""SGD, Adam and AdamW that never import ``torch._dynamo``: the built-in trainer's optimizers.

torch.optim guards its optimizers' ``step``, ``zero_grad``, ``add_param_group``,
``state_dict`` and ``load_state_dict`` for ``torch.compile``, and the guard imports
``torch._dynamo`` on its first call: 1.5-2 s of CPU in every fresh process before its first
training step. A sweep starts one such process per concurrent trial (on a laptop, all on the
same few cores), and a retest or the final model one more each.

The classes here *are* torch.optim's (``isinstance`` holds, LR schedulers and step hooks work,
``state_dict`` is theirs, so a checkpoint of either loads into the other) with those methods
unguarded and ``step`` written out: torch's own update in its multi-tensor (``_foreach``)
operations, which on a GPU update every parameter in a few kernels, as torch.optim does there
(``tests/models/test_optim.py`` checks them step for step against torch.optim). A user's own
trial function can use them too.

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
    """Optimizer's guarded methods, unguarded (first in the subclasses' method order), and the
    one ``step``: the closure, then each group's parameters that have a gradient, updated by the
    subclass's ``_update``."""

    add_param_group = _unguarded(Optimizer.add_param_group)
    zero_grad = _unguarded(Optimizer.zero_grad)
    state_dict = _unguarded(Optimizer.state_dict)
    load_state_dict = _unguarded(Optimizer.load_state_dict)
    param_groups: list[dict[str, Any]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients; use torch.optim's")
            self._update(group, params, torch._foreach_neg(grads) if group["maximize"] else grads)
        return loss

    def _update(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        raise NotImplementedError


def _scalar(value: Any) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


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
        )

    def _update(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        lr, wd = _scalar(group["lr"]), group["weight_decay"]
        momentum, dampening, nesterov = group["momentum"], group["dampening"], group["nesterov"]
        if wd != 0:
            grads = torch._foreach_add(grads, params, alpha=wd)
        if momentum != 0:
            bufs, old, old_grads = [], [], []
            for p, g in zip(params, grads):
                state = self.state[p]
                if state.get("momentum_buffer") is None:  # the first step: the gradient itself
                    state["momentum_buffer"] = g.detach().clone()
                else:
                    old.append(state["momentum_buffer"])
                    old_grads.append(g)
                bufs.append(state["momentum_buffer"])
            if old:
                torch._foreach_mul_(old, momentum)
                torch._foreach_add_(old, old_grads, alpha=1 - dampening)
            grads = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(params, grads, alpha=-lr)


class Adam(_Unguarded, torch.optim.Adam):
    """``torch.optim.Adam`` (weight decay added to the gradient, maximize; no AMSGrad) without
    its compile guards."""

    decoupled = False  # AdamW: the weights decay, not the gradient

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
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)

    def _update(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        if group.get("amsgrad"):
            raise RuntimeError(f"{type(self).__name__}: no AMSGrad here; use torch.optim's")
        lr, wd, eps = _scalar(group["lr"]), group["weight_decay"], group["eps"]
        beta1, beta2 = (_scalar(b) for b in group["betas"])
        scalar_dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        states = [self.state[p] for p in params]
        for p, state in zip(params, states):
            if not state:
                state["step"] = torch.tensor(0.0, dtype=scalar_dtype)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps = [s["step"] for s in states]
        exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        torch._foreach_add_(steps, 1)
        if wd != 0:
            if self.decoupled:
                torch._foreach_mul_(params, 1 - lr * wd)
            else:
                grads = torch._foreach_add(grads, params, alpha=wd)
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        counts = [s.item() for s in steps]
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, [(1 - beta2**n) ** 0.5 for n in counts])
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, exp_avgs, denom, [-(lr / (1 - beta1**n)) for n in counts])


class AdamW(Adam, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay, maximize; no AMSGrad) without its compile
    guards: this module's Adam with the weights decaying, torch's AdamW's defaults."""

    decoupled = True

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
        super().__init__(params, lr, betas, eps, weight_decay, maximize=maximize)
