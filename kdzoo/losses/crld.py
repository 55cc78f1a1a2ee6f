"""crld: Zhang, Liu, Cai & Ma, "Cross-View Consistency Regularisation for Knowledge Distillation",
ACM MM 2024, arXiv 2412.16493.

Authors' code: arcaninez/CRLD @ fe42473, ``mdistiller/distillers/CRLD.py``
(``CRLD.forward_train``, lines 29-63). With weak-view logits s, t and
strong-view logits s', t' and the per-sample
KD_i = τ² KL(softmax_τ(t_i) || softmax_τ(s_i)):

    ce = ce_weight * (CE(s, y) + CE(s', y))
    wv = wv_weight * mean_i( [KD_i(s, t) + KD_i(s', t')] * 1[max softmax(t_i)  >= tau_w] )   (within view)
    cv = cv_weight * mean_i( [KD_i(s', t) + KD_i(s, t')] * 1[max softmax(t'_i) >= tau_s] )   (cross view)

Unlike MLKD's, these masks act per sample (``kd_loss`` defaults to
``reduce=False`` there); the mean runs over the whole batch, masked samples
included as zeros. The confidences use the teacher's softmax at temperature 1.

Defaults (``mdistiller/engine/cfg.py:195-200``; their resnet32x4 -> resnet8x4
config ``configs/cifar100/crld/res32x4_res8x4.yaml`` keeps them): ce_weight = 1,
wv_weight = 2, cv_weight = 0.5, T = 4, tau_w = 0.9, tau_s = 0.2. The teacher
enters only through softmax, so ``probs`` access suffices.

The strong view (``strong_view = "authors"``, kdzoo.engine.views) is theirs,
the one MLKD's authors use (``mdistiller/dataset/cifar100.py``:
``get_cifar100_train_transform_strong``, ``RandAugment``): the image cropped
and flipped independently of the weak view, then two PIL operations drawn with
replacement from 14 at uniformly random magnitudes and a Cutout of up to half
the side (kdzoo.data.randaugment). ``strong_view = "weak_randaugment"`` is
kdzoo's earlier view: torchvision's RandAugment(2, 10) on the weak view's pixels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive, check_strong_view, check_strong_view_name, kl_per_row


def per_sample_kd(s: Tensor, t: Tensor, temperature: float) -> Tensor:
    """τ² KL(softmax_τ(t_i) || softmax_τ(s_i)) for every row i, shape (N,)."""
    return temperature ** 2 * kl_per_row(F.log_softmax(t / temperature, dim=1), F.log_softmax(s / temperature, dim=1))


@register_loss("crld")
class CRLD(DistillLoss):
    requires = "probs"
    needs = frozenset({"strong_view"})
    paper = "Zhang et al., ACM MM 2024, Cross-View Consistency Regularisation for Knowledge Distillation"
    arxiv = "2412.16493"
    year = 2024
    venue = "ACM MM"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True),
                    "wv_weight": Float(0.05, 4.0, log=True),
                    "cv_weight": Float(0.02, 2.0, log=True),
                    "tau_w": Float(0.5, 0.99)}

    def __init__(self, temperature: float = 4.0, ce_weight: float = 1.0, wv_weight: float = 2.0,
                 cv_weight: float = 0.5, tau_w: float = 0.9, tau_s: float = 0.2, strong_view: str = "authors") -> None:
        super().__init__()
        self.strong_view = check_strong_view_name("crld", strong_view)
        check_positive("crld", temperature=temperature)
        for name, tau in (("tau_w", tau_w), ("tau_s", tau_s)):
            if not 0 <= tau <= 1:
                raise ConfigError(f"crld: {name} is a confidence threshold in [0, 1], got {tau}")
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.wv_weight = wv_weight
        self.cv_weight = cv_weight
        self.tau_w = tau_w
        self.tau_s = tau_s

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor, *, epoch: int = 1,
                student_logits_strong: Tensor | None = None, teacher_logits_strong: Tensor | None = None,
                **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        s2, t2 = check_strong_view("crld", student_logits_strong, teacher_logits_strong, target)
        with torch.no_grad():
            mask_w = (F.softmax(t, dim=1).max(dim=1).values >= self.tau_w).float()
            mask_s = (F.softmax(t2, dim=1).max(dim=1).values >= self.tau_s).float()
        tau = self.temperature
        ce = self.ce_weight * (F.cross_entropy(s, target) + F.cross_entropy(s2, target))
        wv = self.wv_weight * ((per_sample_kd(s, t, tau) + per_sample_kd(s2, t2, tau)) * mask_w).mean()
        cv = self.cv_weight * ((per_sample_kd(s2, t, tau) + per_sample_kd(s, t2, tau)) * mask_s).mean()
        return {"ce": ce, "wv": wv, "cv": cv}
