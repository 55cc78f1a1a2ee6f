"""abkd: Wang et al., ICML 2025, "ABKD: Pursuing a Proper Allocation of the Probability Mass in
Knowledge Distillation via alpha-beta-Divergence", arXiv 2505.04560.

KD with the forward KL replaced by the alpha-beta divergence (Cichocki et al. 2011),
which interpolates between forward KL (alpha=1, beta=0) and reverse KL (alpha=0,
beta=1). With p = softmax(t / T), q = softmax(s / T), summed over classes:

    D_AB(p || q) = -1 / (alpha * beta) * sum_c ( p^alpha q^beta - alpha / (alpha + beta) * p^(alpha + beta)
                                                 - beta / (alpha + beta) * q^(alpha + beta) )
    loss = ce_weight * CE(s, y) + kd_weight * mean_i D_AB(p_i || q_i)

(no T^2 factor). Returned terms: "ce" and "abkd" (= kd_weight * mean D_AB).
Defaults are the authors' CIFAR-100 example (ghwang-s/abkd README.md:167-174,
``bash train_ab.sh 1.1 1.1 0.8 0.8 resnet56 resnet20 0 32``): alpha=0.8,
beta = 1.1 - 0.8 = 0.3, kd_weight=32, with T=4 (standard_classification/train_student.py:66)
and ce_weight=1 (``-r 1``; loss = r * CE + a * div + b * kd, helper/loops.py:94).

Where alpha, beta or alpha + beta is 0 the general formula is 0/0; the authors'
distiller_zoo/abkl.py has a branch for each, reproduced here as it computes:

    alpha = beta = 0:  1/2 * sum (log q - log p)^2
    alpha = 0:         1/beta  * sum ( q^beta log(q^beta / p^beta) - q^beta + p^beta )
    beta = 0:          1/alpha * sum ( p^alpha log(p^alpha / q^alpha) - p^alpha + q^alpha )
    alpha + beta = 0:  1/alpha * sum ( log(q^alpha / p^alpha) + p^alpha / q^alpha - 1 )

Quirk: the limits of the general formula have 1/beta^2 and 1/alpha^2 in the last
three (Cichocki et al. 2011), so the authors' branches are beta (resp. alpha) times
the limit; the loss jumps when alpha or beta reaches 0 exactly. Classes where a
student or teacher logit is infinite contribute 0, as in abkl.py. The authors'
loss also returns two student entropies for logging; kdzoo does not. Their
script's ``-a`` flag defaults to None and crashes ``if opt.alpha > 0``
(train_student.py:62, :107) unless given, hence ``-a 0`` in every example.

The loss sees the teacher only through softmax(t / T), unchanged when a
constant is added to a teacher row, so log-probabilities work as teacher
logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive


def ab_divergence(log_p: Tensor, log_q: Tensor, alpha: float, beta: float, mask: Tensor) -> Tensor:
    """Per-row alpha-beta divergence D_AB(p || q) from log-probabilities, with the authors' degenerate
    branches; classes where ``mask`` is True contribute 0."""
    if alpha == 0 and beta == 0:
        terms = 0.5 * (log_q - log_p) ** 2
    elif alpha == 0:
        q_b, p_b = torch.exp(beta * log_q), torch.exp(beta * log_p)
        terms = (q_b * beta * (log_q - log_p) - q_b + p_b) / beta
    elif beta == 0:
        p_a, q_a = torch.exp(alpha * log_p), torch.exp(alpha * log_q)
        terms = (p_a * alpha * (log_p - log_q) - p_a + q_a) / alpha
    elif alpha + beta == 0:
        terms = (alpha * (log_q - log_p) + torch.exp(alpha * (log_p - log_q)) - 1.0) / alpha
    else:
        # exponents of log-probabilities: exact where p^alpha or q^beta would underflow
        cross = torch.exp(alpha * log_p + beta * log_q)
        own_p = alpha / (alpha + beta) * torch.exp((alpha + beta) * log_p)
        own_q = beta / (alpha + beta) * torch.exp((alpha + beta) * log_q)
        terms = -(cross - own_p - own_q) / (alpha * beta)
    return terms.masked_fill(mask, 0.0).sum(dim=1)


@register_loss("abkd")
class ABKD(DistillLoss):
    requires = "probs"
    paper = "Wang et al., ICML 2025, ABKD: Probability Mass Allocation in KD via alpha-beta-Divergence"
    arxiv = "2505.04560"
    year = 2025
    venue = "ICML"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"alpha": Float(0.2, 1.5), "beta": Float(0.05, 1.0), "kd_weight": Float(1.0, 64.0, log=True)}

    def __init__(self, alpha: float = 0.8, beta: float = 0.3, temperature: float = 4.0,
                 kd_weight: float = 32.0, ce_weight: float = 1.0) -> None:
        super().__init__()
        check_positive("abkd", temperature=temperature)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = temperature
        self.kd_weight = kd_weight
        self.ce_weight = ce_weight

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        T = self.temperature
        mask = torch.isinf(s) | torch.isinf(t)
        div = ab_divergence(F.log_softmax(t / T, dim=1), F.log_softmax(s / T, dim=1), self.alpha, self.beta, mask)
        return {"ce": self.ce_weight * F.cross_entropy(s, target), "abkd": self.kd_weight * div.mean()}
