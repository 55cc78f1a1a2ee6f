"""ce: the student trained alone with cross-entropy on the labels.

The baseline of every leaderboard. It never looks at the teacher
(``requires = "none"``). With a black-box teacher that only returns labels,
the trainer's pseudo-label option turns this into pseudo-label training.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from .base import DistillLoss, check_logits


@register_loss("ce")
class CrossEntropy(DistillLoss):
    requires = "none"
    paper = "cross-entropy baseline (student alone)"

    def __init__(self, ce_weight: float = 1.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.label_smoothing = label_smoothing

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, _ = check_logits(student_logits, None, target)
        return {"ce": self.ce_weight * F.cross_entropy(s, target, label_smoothing=self.label_smoothing)}
