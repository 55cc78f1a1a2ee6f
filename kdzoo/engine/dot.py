"""DOT, the Distillation-Oriented Trainer (Zhao et al., ICCV 2023, arXiv 2307.08436).

SGD with two momentum buffers per parameter: the task gradient (the ``"ce"`` term) is
accumulated with momentum ``momentum - delta``, the distillation gradient (every other
term) with ``momentum + delta``, and the parameter moves by the sum of both buffers.
Usable with any loss: ``train: {optimizer: dot, dot_delta: 0.075}``.

Follows mdistiller @ a08d46f, ``mdistiller/engine/dot.py`` (the update, lines 16-55) and
``mdistiller/engine/trainer.py`` lines 229-280 (momenta ``momentum -/+ DELTA``, the order of
the two backward passes); default delta 0.075 from ``mdistiller/engine/cfg.py`` line 172
and ``configs/cifar100/dot/*.yaml``. Their quirks, reproduced:

- weight decay is added to the task gradient only, except for a parameter that receives
  no task gradient (e.g. a loss's own parameter), whose distillation gradient gets it,
  but not on that buffer's first step;
- a parameter with only one of the two gradients uses the mean momentum
  ``(m_task + m_kd) / 2`` for it;
- a buffer starts as the first gradient it sees (no dampening), as in torch's SGD.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..errors import ConfigError
from . import distributed

TASK_TERM = "ce"
DOT_DELTA = 0.075   # mdistiller/engine/cfg.py line 172, configs/cifar100/dot/*.yaml


def check_momenta(momentum: float, delta: float) -> None:
    """Both momenta, ``momentum -/+ delta``, must be usable ones."""
    if not 0.0 <= delta <= momentum or momentum + delta >= 1.0:
        raise ConfigError(f"optimizer dot: momentum - dot_delta ({momentum - delta:g}) and momentum + dot_delta "
                          f"({momentum + delta:g}) must lie in [0, 1); the authors use momentum 0.9, dot_delta 0.075")


class DistillationOrientedSGD(torch.optim.Optimizer):
    """Call ``backward(terms)`` (instead of ``loss.backward()``), then ``step()``."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float, delta: float,
                 weight_decay: float = 0.0) -> None:
        check_momenta(momentum, delta)
        if distributed.current().enabled:
            # DDP reduces gradients once per backward pass; DOT needs two passes per step
            raise ConfigError("optimizer dot runs on one process only; train without torchrun or use sgd")
        defaults = dict(lr=lr, momentum_task=momentum - delta, momentum_kd=momentum + delta,
                        weight_decay=weight_decay)
        super().__init__(params, defaults)
        self._kd_grads: dict[Tensor, Tensor] = {}

    def backward(self, terms: dict[str, Tensor]) -> None:
        """Distillation gradient first (kept aside), then the task gradient into ``.grad``."""
        if TASK_TERM not in terms:
            raise ConfigError(f"optimizer dot needs a loss with a '{TASK_TERM}' term (the task loss); "
                              f"this loss returns {sorted(terms)}; use optimizer sgd")
        task = terms[TASK_TERM]
        distill = [v for k, v in terms.items() if k != TASK_TERM]
        self.zero_grad(set_to_none=True)
        self._kd_grads = {}
        if distill and any(v.requires_grad for v in distill):
            total = distill[0]
            for v in distill[1:]:
                total = total + v
            total.backward(retain_graph=True)
            self._kd_grads = {p: p.grad for g in self.param_groups for p in g["params"] if p.grad is not None}
            self.zero_grad(set_to_none=True)
        if task.requires_grad:
            task.backward()

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            m_task, m_kd = group["momentum_task"], group["momentum_kd"]
            m_mean = (m_task + m_kd) / 2.0
            for p in group["params"]:
                kd_grad = self._kd_grads.get(p)
                if p.grad is not None:
                    d = p.grad.add(p, alpha=wd) if wd != 0 else p.grad
                    self._advance(p, "momentum_buffer", d, m_task if kd_grad is not None else m_mean)
                    p.add_(self.state[p]["momentum_buffer"], alpha=-lr)
                if kd_grad is not None:
                    state = self.state[p]
                    if p.grad is None and wd != 0 and "momentum_kd_buffer" in state:
                        kd_grad = kd_grad.add(p, alpha=wd)
                    self._advance(p, "momentum_kd_buffer", kd_grad, m_kd if p.grad is not None else m_mean)
                    p.add_(state["momentum_kd_buffer"], alpha=-lr)
        self._kd_grads = {}

    def _advance(self, p: Tensor, key: str, d: Tensor, momentum: float) -> None:
        state = self.state[p]
        if key not in state:
            state[key] = d.detach().clone()
        else:
            state[key].mul_(momentum).add_(d)
