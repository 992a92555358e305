"""Keras' Adam on torch's fused kernel, without importing torch.compile on the way.

torch.optim wraps an optimizer's bookkeeping (`add_param_group`, `zero_grad`, `state_dict`, `load_state_dict`) in
`torch._disable_dynamo`, and Adam's `step` in a wrapper that turns gradients off and marks a graph break, so that
torch.compile handles them well. The first call of either imports `torch._dynamo`: 1.3-1.8 s on two cores, more
than `import torch` itself, a tenth of a bf16 `cnn` fit and a fifth of a `fast` one (BENCHMARKS.md, issue 28).
convscope never compiles its training loop, so `KerasAdam` calls these methods undecorated (`__wrapped__`, which
both wrappers keep through functools), with gradients off around the step as the wrapper would. The update is
torch's Adam, unchanged (tests/test_adam.py). On a torch without `__wrapped__` the decorated methods run: slower
to start, the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


def _undecorated(method: Callable[..., Any]) -> Callable[..., Any]:
    return getattr(method, "__wrapped__", method)


class KerasAdam(torch.optim.Adam):
    """Adam with Keras' epsilon (1e-7; torch's default is 1e-8) and its other defaults."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, fused: bool | None = None) -> None:
        super().__init__(params, lr=lr, eps=1e-7, fused=fused)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        _undecorated(Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _undecorated(Optimizer.zero_grad)(self, set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return _undecorated(Optimizer.state_dict)(self)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        _undecorated(Optimizer.load_state_dict)(self, state_dict)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        with torch.no_grad():  # what the wrapper sets, for an optimizer that is not differentiable
            return _undecorated(torch.optim.Adam.step)(self, closure)
