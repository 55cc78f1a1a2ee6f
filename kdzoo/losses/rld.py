"""rld: Sun et al. 2024, "Knowledge Distillation with Refined Logits", arXiv 2408.07703.

Teachers can be wrong; RLD keeps the teacher's class correlations without
letting a wrong argmax mislead the student. With p = softmax(z / T), label y
and m = argmax t (the teacher's own prediction):

    SCD  = T_scd^2 * KL([p_t[m], 1 - p_t[m]] || [p_s[y], 1 - p_s[y]])    at temperature T_scd
    MCD  = T^2 * KL(softmax_T(t restricted to K) || softmax_T(s restricted to K)),
           K = {c : t_c < t_y}: every class with t_c >= t_y (y itself and ties
           with t_y included) is masked out of both softmaxes
    loss = ce_weight * CE(s, y) + min(epoch / warmup, 1) * (alpha * SCD + beta * MCD)

Returned terms: "ce", "scd" (= factor * alpha * SCD), "mcd" (= factor * beta * MCD);
``epoch`` counts from 1. Defaults are the CIFAR-100 setting: T=4, ce_weight=1,
alpha=1, beta=8, warmup=20, ``scd_temperature=None`` meaning T_scd = T (the
authors' published training command; their code's bare default is 1). ImageNet:
T=1, beta 0.5 or 2, warmup 1.

Masked classes get logit -1e9 (after division by T, as in the authors' code),
so their probability is exactly 0. A sample whose mask covers every class
(t_y is the row minimum, e.g. a constant teacher row) has no classes left:
its MCD is 0 (both softmaxes are then the same uniform), and it still counts
in the batch mean. With C=2, K has at most one class, so MCD is always 0.
C < 2 or an empty batch is a ConfigError. Ties for the teacher's argmax do not
matter: p_t[m] is the same for every tied m.

When the teacher's prediction is right and unique on every sample (m = y, K = all
classes but y) and T_scd = T, SCD equals DKD's TCKD and MCD equals DKD's NCKD,
so RLD equals DKD with the same weights.

``standardize=True`` z-scores both logit rows (Sun et al., CVPR 2024, arXiv
2403.01427) before SCD/MCD, not before CE; it is monotone per row, so m and the
mask do not change. ``rld+ls`` has no published setting (the logit
standardization repository has no RLD): kdzoo uses the one registered for ``dkd+ls``
(T=2, weights times 9: alpha=9, beta=72, T_scd = T).

The loss depends on the teacher only through softmaxes of t / T, argmax t and
comparisons within a row, all unchanged when a constant is added to a teacher
row, so log-probabilities work as teacher logits: ``requires = "probs"``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float, Int
from .base import (DistillLoss, binary_log_probs, check_classes, check_logits, check_positive, kl_from_log_probs,
                   standardize, warmup_factor)

MASKED = -1e9


@register_loss("rld")
class RLD(DistillLoss):
    requires = "probs"
    paper = "Sun et al. 2024, Knowledge Distillation with Refined Logits"
    year, venue = 2024, "arXiv"
    arxiv = "2408.07703"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True),
                    "alpha": Float(0.1, 4.0, log=True),
                    "beta": Float(0.25, 16.0, log=True),
                    "warmup": Int(0, 20)}

    def __init__(self, temperature: float = 4.0, scd_temperature: float | None = None,
                 ce_weight: float = 1.0, alpha: float = 1.0, beta: float = 8.0, warmup: float = 20,
                 standardize: bool = False) -> None:
        super().__init__()
        check_positive("rld", temperature=temperature)
        if scd_temperature is not None and scd_temperature <= 0:
            raise ConfigError(f"rld: scd_temperature must be > 0 or None (= temperature), got {scd_temperature}")
        if warmup < 0:
            raise ConfigError(f"rld: warmup must be >= 0 epochs, got {warmup}")
        self.temperature = temperature
        self.scd_temperature = scd_temperature
        self.ce_weight = ce_weight
        self.alpha = alpha
        self.beta = beta
        self.warmup = warmup
        self.standardize = standardize

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        check_classes("rld", s)
        ce = F.cross_entropy(s, target)
        if self.standardize:
            s, t = standardize(s), standardize(t)
        T = self.temperature
        T_scd = T if self.scd_temperature is None else self.scd_temperature
        scd = kl_from_log_probs(binary_log_probs(t, t.argmax(dim=1), T_scd), binary_log_probs(s, target, T_scd))
        masked = t >= t.gather(1, target[:, None])
        log_p_t = F.log_softmax((t / T).masked_fill(masked, MASKED), dim=1)
        log_p_s = F.log_softmax((s / T).masked_fill(masked, MASKED), dim=1)
        mcd = kl_from_log_probs(log_p_t, log_p_s)
        w = warmup_factor(epoch, self.warmup)
        return {"ce": self.ce_weight * ce, "scd": w * self.alpha * T_scd ** 2 * scd,
                "mcd": w * self.beta * T ** 2 * mcd}


register_loss("rld+ls", RLD, defaults={"standardize": True, "temperature": 2.0, "alpha": 9.0, "beta": 72.0},
              space={"temperature": Float(1.0, 8.0, log=True), "alpha": Float(0.5, 20.0, log=True),
                     "beta": Float(2.0, 80.0, log=True), "warmup": Int(0, 20)})
