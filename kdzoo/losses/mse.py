"""mse: Ba & Caruana 2014, "Do Deep Nets Really Need to be Deep?", arXiv 1312.6184.

Logit matching: the student regresses the teacher's logits directly,

    loss = ce_weight * CE(s, y) + mse_weight * mean_{i,c} (s_ic - t_ic)^2

(mean over all N*C entries). Returned terms: "ce" and "mse". Defaults:
ce_weight=1, mse_weight=1. The paper trains on the L2 logit loss alone
(ce_weight=0 reproduces that) and sums rather than averages over classes,
which only rescales mse_weight.

Unlike the softmax-based losses, this depends on the raw logit values: adding
a constant to a teacher row changes it, so log-probabilities cannot stand in
for logits and ``requires = "logits"``; kdzoo refuses it for a teacher that
only exposes probabilities.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_classes, check_logits


@register_loss("mse")
class MSE(DistillLoss):
    requires = "logits"
    paper = "Ba & Caruana 2014, Do Deep Nets Really Need to be Deep?"
    year, venue = 2014, "NeurIPS"
    arxiv = "1312.6184"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"mse_weight": Float(0.01, 10.0, log=True)}

    def __init__(self, ce_weight: float = 1.0, mse_weight: float = 1.0) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.mse_weight = mse_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        check_classes("mse", s, min_classes=1)
        return {"ce": self.ce_weight * F.cross_entropy(s, target),
                "mse": self.mse_weight * F.mse_loss(s, t)}
