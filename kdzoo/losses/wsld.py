"""wsld: Zhou et al., ICLR 2021, "Rethinking Soft Labels for Knowledge Distillation: A Bias-Variance
Tradeoff Perspective" (weighted soft labels), arXiv 2102.00650.

Each sample's soft-label term is weighted by how far the student still lags
behind the teacher on the true label y. With CE_s = -log softmax(s)_y and
CE_t = -log softmax(t)_y (temperature 1, no gradient):

    w_i  = 1 - exp(-max(CE_s / (CE_t + 1e-7), 0))
    soft = T^2 * mean_i[ w_i * H(softmax(t_i / T), softmax(s_i / T)) ]     H = cross-entropy
    loss = ce_weight * CE(s, y) + alpha * soft

Returned terms: "ce" and "wsld" (= alpha * soft). Defaults are the CIFAR-100
setting of the authors' group's cls_KD repository (yzd-v/cls_KD,
configs/distillers/cifar100/res34_distill_res18_cifar.py:49-50): T=4, alpha=2.25,
ce_weight=1 (the distiller adds the head's plain cross-entropy,
mmcls/models/classifiers/distiller.py). The authors' own repository
(bellymonster/Weighted-Soft-Label-Distillation) is ImageNet-only: T=2, alpha=2.5
(knowledge_distiller.py:40-41, loss = hard + alpha * soft at :83), the values of
cls_KD's ImageNet config (configs/distillers/imagenet/res34_distill_res18_img.py:49-50).

What both authors' files compute, reproduced here: the soft term is a
cross-entropy, not a KL divergence, so its value includes the teacher's entropy
(the gradient is the same as with KL); the clamp at 0 never acts, since both
cross-entropies are >= 0; ``num_classes`` in their code only sizes a one-hot
(kdzoo takes C from the logits). Both files allocate their zero with ``.cuda()``
and so fail on a CPU; kdzoo does not.

The loss sees the teacher only through softmax(t / T) and softmax(t), both
unchanged when a constant is added to a teacher row, so log-probabilities work
as teacher logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive


@register_loss("wsld")
class WSLD(DistillLoss):
    requires = "probs"
    paper = "Zhou et al., ICLR 2021, Rethinking Soft Labels for Knowledge Distillation (weighted soft labels)"
    arxiv = "2102.00650"
    year = 2021
    venue = "ICLR"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True), "alpha": Float(0.05, 5.0, log=True)}

    def __init__(self, temperature: float = 4.0, alpha: float = 2.25, ce_weight: float = 1.0) -> None:
        super().__init__()
        check_positive("wsld", temperature=temperature)
        self.temperature = temperature
        self.alpha = alpha
        self.ce_weight = ce_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        T = self.temperature
        ce = F.cross_entropy(s, target)
        soft = -(F.softmax(t / T, dim=1) * F.log_softmax(s / T, dim=1)).sum(dim=1)
        with torch.no_grad():  # the weight steers the term; no gradient flows through it
            ce_s = F.cross_entropy(s, target, reduction="none")
            ce_t = F.cross_entropy(t, target, reduction="none")
            weight = 1.0 - torch.exp(-(ce_s / (ce_t + 1e-7)).clamp_min(0.0))
        return {"ce": self.ce_weight * ce, "wsld": self.alpha * T ** 2 * (weight * soft).mean()}
