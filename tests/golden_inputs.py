"""Fixed logits for the golden-value tests of the logit losses (wsld, nkd, ttm, wttm, abkd).

Written as formulas, not drawn from an RNG, so the authors' code in /tmp and
these tests see the same numbers on any machine. The teacher is right on one
sample only (argmax [1, 3, 5, 7, 9, 9] against labels [0, 3, 9, 2, 5, 7]).
Golden values are the authors' loss output on these float64 inputs and the
directional derivative sum(grad_s * W) of that output.
"""
from __future__ import annotations

import math

import torch

N, C = 6, 10
LABELS = [0, 3, 9, 2, 5, 7]


def student() -> torch.Tensor:
    return torch.tensor([[3 * math.sin(1.3 * i + 0.7 * c) for c in range(C)] for i in range(N)], dtype=torch.float64)


def teacher() -> torch.Tensor:
    return torch.tensor([[4 * math.cos(0.9 * i - 0.4 * c + 0.3) for c in range(C)] for i in range(N)],
                        dtype=torch.float64)


def direction() -> torch.Tensor:
    return torch.tensor([[math.cos(0.5 * i + 0.3 * c) for c in range(C)] for i in range(N)], dtype=torch.float64)


def value_and_slope(loss, terms: list[str]) -> tuple[float, float]:
    """sum of ``terms`` of ``loss`` on the fixed inputs, and its derivative along ``direction()``."""
    s = student().requires_grad_(True)
    out = loss(s, teacher(), torch.tensor(LABELS))
    value = sum(out[k] for k in terms)
    (grad,) = torch.autograd.grad(value, s)
    return float(value.detach()), float((grad * direction()).sum())
