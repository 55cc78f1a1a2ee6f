"""wttm: Zheng & Yang, ICLR 2024, "Knowledge Distillation Based on Transformed Teacher Matching",
arXiv 2402.11148 (weighted TTM, Eq. 10 of the paper).

TTM (see ttm.py) with a per-sample weight: the normalizer of the teacher's
power transform, which is large where the teacher is unsure (at most
C^(1 - gamma)) and close to 1 where it is confident. With v = softmax(t):

    U_gamma(v) = sum_c v_c^gamma
    WTTM       = mean_i[ U_gamma(v_i) * KL(v_gamma,i || softmax(s_i)) ]
    loss       = ce_weight * CE(s, y) + kd_weight * WTTM

Returned terms: "ce" and "wttm" (= kd_weight * WTTM). The authors' code is
distiller_zoo/wttm.py of zkxufo/TTM; it computes U_gamma on the teacher's
probabilities (no gradient reaches the teacher). Their README gives one WTTM
setting, as the partner of CRD (README.md:40-41, ``--add wttm --ttm_l 0.2 -a 4``):
gamma=0.2 with weight 4, which are kdzoo's defaults (ce_weight=1, as ``-r``
defaults to 1, train_student.py:60). The per-pair values of the paper's
appendix A.4 are not in the repository; pass them as arguments.

The loss sees the teacher only through its probabilities, unchanged when a
constant is added to a teacher row, so log-probabilities work as teacher
logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive, kl_per_row


@register_loss("wttm")
class WTTM(DistillLoss):
    requires = "probs"
    paper = "Zheng & Yang, ICLR 2024, Knowledge Distillation Based on Transformed Teacher Matching (weighted TTM)"
    arxiv = "2402.11148"
    year = 2024
    venue = "ICLR"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"gamma": Float(0.05, 1.0, log=True), "kd_weight": Float(0.1, 20.0, log=True)}

    def __init__(self, gamma: float = 0.2, kd_weight: float = 4.0, ce_weight: float = 1.0) -> None:
        super().__init__()
        check_positive("wttm", gamma=gamma)
        self.gamma = gamma
        self.kd_weight = kd_weight
        self.ce_weight = ce_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        powered = self.gamma * F.log_softmax(t, dim=1)
        log_norm = powered.logsumexp(dim=1, keepdim=True)  # in log space: v^gamma underflows for small v
        log_v = powered - log_norm
        kl = kl_per_row(log_v, F.log_softmax(s, dim=1))
        weighted = log_norm.squeeze(1).exp() * kl
        return {"ce": self.ce_weight * F.cross_entropy(s, target), "wttm": self.kd_weight * weighted.mean()}
