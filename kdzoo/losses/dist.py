"""dist: Huang et al., NeurIPS 2022, "Knowledge Distillation from A Stronger Teacher", arXiv 2205.10536.

With p = softmax(z / T) (rows: samples, columns: classes) and
pearson(u, v) = <u - mean u, v - mean v> / (|u - mean u| * |v - mean v| + 1e-8):

    inter = 1 - mean_i pearson(p_s[i, :], p_t[i, :])    (inter-class relation, per sample)
    intra = 1 - mean_c pearson(p_s[:, c], p_t[:, c])    (intra-class relation, per class)
    loss  = ce_weight * CE(s, y) + T^2 * (beta * inter + gamma * intra)

Returned terms: "ce", "inter" (= T^2 * beta * inter), "intra" (= T^2 * gamma * intra).
The 1e-8 is added to the product of norms, as in the authors' code; it keeps a
nearly uniform row finite. Defaults are the CIFAR-100 setting: T=4, beta=2,
gamma=2, ce_weight=1; ImageNet: T=1, beta=2, gamma=2. No warm-up. Source: the
authors' training code (hunto/image_classification_sota, used by hunto/DIST_KD):
``DIST(beta=1, gamma=1, tau)`` in lib/models/losses/kd_loss.py, scaled by
``kd_loss_weight: 2`` in both configs/strategies/distill/dist_cifar.yaml (``kd: dist_t4``)
and resnet_dist.yaml (``kd: dist``, tau 1), so beta = gamma = 2 in both settings.
See docs/methods.md, also for why these weights make a tiny MLP student collapse
on Fashion-MNIST (results/fashion_mnist/DIST_DIAGNOSIS.md).

Batch of one: each class column then holds a single value, its centred vector
is zero and the Pearson correlation is 0 by the formula above, so ``intra`` is
the constant T^2 * gamma (no gradient) - the authors' code gives the same.
An empty batch or C < 2 is a ConfigError.

The loss depends on the teacher only through softmax(t / T), which does not
change when a constant is added to a teacher row, so log-probabilities work as
teacher logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_classes, check_logits, check_positive


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of matching rows: cosine of the mean-centred rows, eps on the norm product."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@register_loss("dist")
class DIST(DistillLoss):
    requires = "probs"
    paper = "Huang et al., NeurIPS 2022, Knowledge Distillation from A Stronger Teacher"
    year, venue = 2022, "NeurIPS"
    arxiv = "2205.10536"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True),
                    "beta": Float(0.05, 4.0, log=True),
                    "gamma": Float(0.05, 4.0, log=True)}

    def __init__(self, temperature: float = 4.0, ce_weight: float = 1.0, beta: float = 2.0,
                 gamma: float = 2.0) -> None:
        super().__init__()
        check_positive("dist", temperature=temperature)
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.beta = beta
        self.gamma = gamma

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        check_classes("dist", s)
        ce = F.cross_entropy(s, target)
        T = self.temperature
        p_s, p_t = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
        inter = 1 - pearson_rows(p_s, p_t).mean()
        intra = 1 - pearson_rows(p_s.t(), p_t.t()).mean()
        return {"ce": self.ce_weight * ce, "inter": T ** 2 * self.beta * inter,
                "intra": T ** 2 * self.gamma * intra}
