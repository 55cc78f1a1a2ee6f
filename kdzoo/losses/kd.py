"""kd: Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network", arXiv 1503.02531.

    loss = ce_weight * CE(s, y) + kd_weight * T^2 * KL(softmax_T(t) || softmax_T(s))

Defaults are the CIFAR-100 setting of the DKD/mdistiller protocol: T=4,
ce_weight=0.1, kd_weight=0.9 (ImageNet: T=1, 0.5/0.5).

``standardize=True`` applies logit standardization (Sun et al., CVPR 2024,
arXiv 2403.01427) to both logit rows before the KL term (not before CE);
``kd+ls`` is registered with the paper's setting T=2, kd_weight=9 (CE weight 0.1 unchanged):
the authors' README command ``--logit-stand --base-temp 2 --kd-weight 9``. Their logs
(``kd,TEACHER,STUDENT,base_temp,kd_weight``) show other settings for some pairs
(vgg13 -> vgg8: T=3; resnet110 -> resnet20: T=4, kd_weight 12); recipes/cifar100_paper.yaml
passes those per pair (docs/methods.md).

The loss depends on the teacher only through softmax_T(t), which does not
change when a constant is added to a row, so log-probabilities work as
teacher logits: with ``probs`` access the result is identical, and with
``label`` access (one-hot teacher) it is the hard-label baseline.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive, kl_with_temperature, standardize


@register_loss("kd")
class KD(DistillLoss):
    requires = "label"
    paper = "Hinton et al. 2015, Distilling the Knowledge in a Neural Network"
    year, venue = 2015, "NIPS-W"
    arxiv = "1503.02531"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 20.0, log=True), "ce_weight": Float(0.1, 1.0, log=True),
                    "kd_weight": Float(0.03, 3.0, log=True)}

    def __init__(self, temperature: float = 4.0, ce_weight: float = 0.1, kd_weight: float = 0.9,
                 standardize: bool = False) -> None:
        super().__init__()
        check_positive("kd", temperature=temperature)
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.kd_weight = kd_weight
        self.standardize = standardize

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        ce = F.cross_entropy(s, target)
        if self.standardize:
            s, t = standardize(s), standardize(t)
        kl = kl_with_temperature(t, s, self.temperature)
        return {"ce": self.ce_weight * ce, "kd": self.kd_weight * self.temperature ** 2 * kl}


register_loss("kd+ls", KD, defaults={"standardize": True, "temperature": 2.0, "kd_weight": 9.0},
              space={**KD.search_space, "temperature": Float(1.0, 8.0, log=True),
                     "kd_weight": Float(0.3, 20.0, log=True)})
