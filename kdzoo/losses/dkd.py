"""dkd: Zhao et al., CVPR 2022, "Decoupled Knowledge Distillation", arXiv 2203.08679.

With p = softmax(z / T) and label y:

    b     = [p_y, 1 - p_y]                        target-class binary distribution
    p_hat = softmax(z / T) over the classes != y  non-target distribution
    TCKD  = T^2 * KL(b_t || b_s),   NCKD = T^2 * KL(p_hat_t || p_hat_s)   (batch means)
    loss  = ce_weight * CE(s, y) + min(epoch / warmup, 1) * (alpha * TCKD + beta * NCKD)

Returned terms: "ce", "tckd" (= factor * alpha * TCKD), "nckd" (= factor * beta * NCKD);
``epoch`` counts from 1. Defaults are the CIFAR-100 setting: T=4, ce_weight=1,
alpha=1, beta=8, warmup=20 (mdistiller's mdistiller/engine/cfg.py). The authors'
per-pair configs (megvii-research/mdistiller, configs/cifar100/dkd/) change only beta:
2 for resnet56 -> resnet20 and resnet110 -> resnet32; 6 for vgg13 -> vgg8,
vgg13 -> MobileNetV2, wrn_40_2 -> wrn_16_2 and wrn_40_2 -> wrn_40_1; 8 (the default)
for resnet32x4 -> resnet8x4/ShuffleV1/ShuffleV2, wrn_40_2 -> ShuffleV1 and
ResNet50 -> MobileNetV2. ImageNet (configs/imagenet/): T=1, warmup 1, beta 0.5
(ResNet34 -> ResNet18) or 2 (ResNet50 -> MobileNetV1).

Implementation: log(1 - p_y) is a log-sum-exp over the non-target log-probabilities
and p_hat is a softmax over the gathered C-1 non-target logits, so the label
is excluded exactly (the authors subtract 1000 from it; the values agree).
With C=2 the non-target distribution has one class and NCKD is 0. C < 2 and an
empty batch are ConfigErrors (the latter from check_logits).

``standardize=True`` z-scores both logit rows (logit standardization, Sun et al.,
CVPR 2024, arXiv 2403.01427) before TCKD/NCKD, not before CE. ``dkd+ls`` is
registered with T=2, alpha=9, beta=72: the authors' current tools/train.py
(sunshangquan/logit-standardization-KD, commit 6b58661 of May 2024 and later) runs
``--logit-stand --base-temp 2 --kd-weight 9`` as DKD.T = 2, DKD.ALPHA = 1 * 9 and
DKD.BETA = 8 * 9 for resnet32x4 -> resnet8x4 (their README's command and the log
``dkd,resnet32x4,resnet8x4,2,9``). Other pairs used other settings; their log names
read ``dkd,TEACHER,STUDENT,base_temp,kd_weight[,DKD.BETA]``, and
recipes/cifar100_paper.yaml passes them per pair (docs/methods.md lists them). The
March-2024 version of that script (2ece47f) set BETA = (new ALPHA) * 9 = 81 and wrote the
base temperature to KD.TEMPERATURE, which DKD does not read (so T stayed 4); that
computation is ``build_loss("dkd+ls", temperature=4, beta=81)``.

Every term depends on the teacher only through softmax(t / T), which is
unchanged when a constant is added to a teacher row (also after
standardization), so log-probabilities work as teacher logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float, Int
from .base import (DistillLoss, binary_log_probs, check_classes, check_logits, check_positive, kl_from_log_probs,
                   non_target, standardize, warmup_factor)


@register_loss("dkd")
class DKD(DistillLoss):
    requires = "probs"
    paper = "Zhao et al., CVPR 2022, Decoupled Knowledge Distillation"
    year, venue = 2022, "CVPR"
    arxiv = "2203.08679"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True),
                    "alpha": Float(0.1, 4.0, log=True),
                    "beta": Float(0.25, 16.0, log=True),
                    "warmup": Int(0, 20)}

    def __init__(self, temperature: float = 4.0, ce_weight: float = 1.0, alpha: float = 1.0,
                 beta: float = 8.0, warmup: float = 20, standardize: bool = False) -> None:
        super().__init__()
        check_positive("dkd", temperature=temperature)
        if warmup < 0:
            raise ConfigError(f"dkd: warmup must be >= 0 epochs, got {warmup}")
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.alpha = alpha
        self.beta = beta
        self.warmup = warmup
        self.standardize = standardize

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        check_classes("dkd", s)
        ce = F.cross_entropy(s, target)
        if self.standardize:
            s, t = standardize(s), standardize(t)
        T = self.temperature
        tckd = kl_from_log_probs(binary_log_probs(t, target, T), binary_log_probs(s, target, T))
        nckd = kl_from_log_probs(F.log_softmax(non_target(t, target) / T, dim=1),
                                 F.log_softmax(non_target(s, target) / T, dim=1))
        w = warmup_factor(epoch, self.warmup) * T ** 2
        return {"ce": self.ce_weight * ce, "tckd": w * self.alpha * tckd, "nckd": w * self.beta * nckd}


register_loss("dkd+ls", DKD, defaults={"standardize": True, "temperature": 2.0, "alpha": 9.0, "beta": 72.0},
              space={"temperature": Float(1.0, 8.0, log=True), "alpha": Float(0.5, 20.0, log=True),
                     "beta": Float(2.0, 80.0, log=True), "warmup": Int(0, 20)})
