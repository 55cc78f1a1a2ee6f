"""ttm: Zheng & Yang, ICLR 2024, "Knowledge Distillation Based on Transformed Teacher Matching",
arXiv 2402.11148 (transformed teacher matching, Eq. 7 of the paper).

KD with the temperature dropped on the student side: the student at
temperature 1 matches the teacher's power-transformed distribution. With
v = softmax(t) and gamma = 1 / T:

    v_gamma = v^gamma / sum_c v_c^gamma              (= softmax(gamma * t))
    TTM     = mean_i KL(v_gamma,i || softmax(s_i))
    loss    = ce_weight * CE(s, y) + kd_weight * TTM

Returned terms: "ce" and "ttm" (= kd_weight * TTM). Defaults are the example of
the authors' README (zkxufo/TTM README.md:21-22, ``--distill ttm --ttm_l 0.1 -r 1 -b 45 -a 0``):
gamma=0.1, kd_weight=45, ce_weight=1; their train loop adds
``gamma * CE + alpha * loss_div + beta * loss_kd`` (helper/loops.py:83) and the
example zeroes the extra ``loss_div`` with ``-a 0``.

Quirk of their script, irrelevant to the loss: ``-a`` defaults to None
(train_student.py:61) and ``if opt.alpha > 0`` (:97) raises a TypeError
when it is omitted, so every run must pass ``-a 0``.

The loss sees the teacher only through softmax(gamma * t), unchanged when a
constant is added to a teacher row, so log-probabilities work as teacher
logits: ``requires = "probs"``. The weighted form is ``wttm`` (wttm.py).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive, kl_from_log_probs


@register_loss("ttm")
class TTM(DistillLoss):
    requires = "probs"
    paper = "Zheng & Yang, ICLR 2024, Knowledge Distillation Based on Transformed Teacher Matching"
    arxiv = "2402.11148"
    year = 2024
    venue = "ICLR"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"gamma": Float(0.05, 1.0, log=True), "kd_weight": Float(1.0, 100.0, log=True)}

    def __init__(self, gamma: float = 0.1, kd_weight: float = 45.0, ce_weight: float = 1.0) -> None:
        super().__init__()
        check_positive("ttm", gamma=gamma)
        self.gamma = gamma
        self.kd_weight = kd_weight
        self.ce_weight = ce_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        kl = kl_from_log_probs(F.log_softmax(self.gamma * t, dim=1), F.log_softmax(s, dim=1))
        return {"ce": self.ce_weight * F.cross_entropy(s, target), "ttm": self.kd_weight * kl}
