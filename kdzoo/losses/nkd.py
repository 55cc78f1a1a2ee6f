"""nkd: Yang et al., ICCV 2023, "From Knowledge Distillation to Self-Knowledge Distillation: A Unified
Approach with Normalized Loss and Customized Soft Labels" (normalized KD), arXiv 2303.13005.

KD's soft term splits into the target class and the non-target classes; NKD
normalizes the non-target part so it no longer shrinks as the teacher grows
confident. With label y, p = softmax(s), v = softmax(t) (temperature 1) and
p_hat, v_hat the softmaxes at temperature T over the C-1 classes other than y:

    target     = -mean_i[ v_y * log p_y ]                         (v_y without gradient)
    non_target = -gamma * T^2 * mean_i[ sum_{c != y} v_hat_c * log p_hat_c ]
    loss       = ce_weight * CE(s, y) + target + non_target

Returned terms: "ce", "target", "non_target". Defaults are the authors'
CIFAR-100 setting (yzd-v/cls_KD, configs/distillers/cifar100/res34_distill_res18_cifar.py:67-68):
T=3, gamma=3.5, ce_weight=1 (their distiller adds the head's plain cross-entropy,
mmcls/models/classifiers/distiller.py). ImageNet (configs/distillers/imagenet/res34_distill_res18_img.py:67-68,
also the defaults of mmcls/models/dis_losses/nkd.py:14-15): T=1, gamma=1.5.

Both parts are cross-entropies as in the authors' nkd.py:38 and :48-49, so their
values include the teacher's (normalized) entropy; the gradient is that of the
corresponding KL divergences. The non-target classes are those != y, as in
cls_KD after commit 9466b3f ("Update nkd.py"): before it, nkd.py:40 built the
mask with ``scatter_(1, label, 1)``, which keeps every class, so the
"non-target" softmax still contained the target. kdzoo implements the fixed
version only. Needs C >= 2 (with one class there is no non-target part).

The loss sees the teacher only through softmaxes of t, unchanged when a
constant is added to a teacher row, so log-probabilities work as teacher
logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_classes, check_logits, check_positive, non_target


@register_loss("nkd")
class NKD(DistillLoss):
    requires = "probs"
    paper = "Yang et al., ICCV 2023, From Knowledge Distillation to Self-Knowledge Distillation (normalized KD)"
    arxiv = "2303.13005"
    year = 2023
    venue = "ICCV"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True), "gamma": Float(0.1, 8.0, log=True)}

    def __init__(self, temperature: float = 3.0, gamma: float = 3.5, ce_weight: float = 1.0) -> None:
        super().__init__()
        check_positive("nkd", temperature=temperature)
        self.temperature = temperature
        self.gamma = gamma
        self.ce_weight = ce_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        check_classes("nkd", s)  # one class leaves no non-target part
        T = self.temperature
        ce = F.cross_entropy(s, target)
        log_p_y = F.log_softmax(s, dim=1).gather(1, target[:, None])
        v_y = F.softmax(t, dim=1).gather(1, target[:, None]).detach()
        s_rest, t_rest = non_target(s, target), non_target(t, target)
        cross = (F.softmax(t_rest / T, dim=1) * F.log_softmax(s_rest / T, dim=1)).sum(dim=1).mean()
        return {"ce": self.ce_weight * ce, "target": -(v_y * log_p_y).mean(),
                "non_target": -self.gamma * T ** 2 * cross}
