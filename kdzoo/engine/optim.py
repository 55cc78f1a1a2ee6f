"""The optimizer and the learning-rate schedule of a run, both functions of its TrainConfig alone."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import Tensor

from .config import TrainConfig
from .dot import DistillationOrientedSGD


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` epochs into training (fractional, from 0)."""
    if cfg.warmup_epochs > 0 and progress < cfg.warmup_epochs:
        return cfg.lr * (progress + 1e-12) / cfg.warmup_epochs
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-12)
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * min((progress - cfg.warmup_epochs) / span, 1.0)))
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(progress >= m for m in cfg.milestones)
    return cfg.lr


def make_optimizer(cfg: TrainConfig, params: Iterable[Tensor]) -> torch.optim.Optimizer:
    """SGD or AdamW, fused (one kernel for all parameters) where this PyTorch and device have it.

    Fused SGD gives the same weights as the default implementation; fused AdamW
    differs from it in rounding only.
    """
    params = list(params)
    if cfg.optimizer == "dot":
        return DistillationOrientedSGD(params, cfg.lr, cfg.momentum, cfg.dot_delta, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        make = lambda **kw: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)
    else:
        make = lambda **kw: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                            weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **kw)
    if params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return make(fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass
    return make()


__all__ = ["learning_rate", "make_optimizer"]
