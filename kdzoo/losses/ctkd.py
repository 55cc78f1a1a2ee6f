"""ctkd: Li et al., AAAI 2023, "Curriculum Temperature for Knowledge Distillation", arXiv 2211.16231.

Vanilla KD whose temperature is learned adversarially (the authors' "global" variant):

    tau    = t_start + t_end * sigmoid(GRL_lambda(theta))          theta: one trainable scalar
    loss   = ce_weight * CE(s, y) + kd_weight * tau^2 * KL(softmax_tau(t) || softmax_tau(s))
    lambda = lambda_min + (lambda_max - lambda_min) * (1 + cos(pi * min(epoch, E) / E)) / 2

GRL_lambda is the identity forward and multiplies the gradient by lambda backward. With
lambda <= 0 the optimizer that minimises the loss w.r.t. the student moves theta to
*maximise* it (the curriculum makes the task harder as |lambda| grows over E epochs).
theta is a parameter of this module, so the trainer optimises it with the student (same
SGD, learning rate and weight decay, as the authors' ``trainable_list``) and checkpoints it.

Defaults: the authors' CIFAR-100 setting, github.com/zhengli97/CTKD @ 7d52522:
``scripts/run_cifar_distill.sh`` lines 18-21 (``-r 0.1 -a 0.9``, ``--cosine_decay 1
--decay_max 0 --decay_min -1 --decay_loops 10``), ``train_student.py`` lines 89-90
(``t_start`` 1, ``t_end`` 20), ``models/temp_global.py`` line 12 (theta starts at 1, so tau
starts at 1 + 20 * sigmoid(1) = 15.62), ``distiller_zoo/KD.py`` line 17 (batch-mean KL times
tau^2). Epochs count from 1 as in their loop (``train_student.py`` line 409).

``standardize=True`` z-scores both logit rows before the KL term (Sun et al., CVPR 2024);
``ctkd+ls`` is registered with the setting of logit standardization's authors,
github.com/sunshangquan/logit-standardization-KD @ f6e5aa5, ``CTKD/scripts/run_cifar_distill.sh``
line 18: ``-r 0.1 -a 9`` (kd_weight 9), the same temperature module and curriculum.

Quirks of the authors' code, reproduced: ``--kd_T`` is ignored when the temperature is learned
(their LS script passes ``--kd_T 2`` to no effect); in the LS repository ``train_student.py``
line 314 picks the standardized KL when ``--logit_stand`` is *absent* (inverted flag), which
is what their script runs and what ``ctkd+ls`` implements. Their instance-wise temperature
module is not in the repository (only a README snippet of its loss), so it is not offered.

``curriculum_fraction`` > 0 replaces ``curriculum_epochs`` by that fraction of the run's
epochs (10/240 reproduces the authors' proportion on shorter schedules); 0 keeps it off.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float
from .base import DistillLoss, check_logits, check_positive, kl_with_temperature, standardize


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.scale, None


def cosine_curriculum(epoch: float, epochs: float, start: float, end: float) -> float:
    """``start`` at epoch 0, ``end`` from ``epochs`` on, a half cosine in between."""
    progress = min(max(float(epoch), 0.0), float(epochs)) / float(epochs)
    return end + (start - end) * (1.0 + math.cos(math.pi * progress)) / 2.0


@register_loss("ctkd")
class CTKD(DistillLoss):
    requires = "label"
    paper = "Li et al., AAAI 2023, Curriculum Temperature for Knowledge Distillation"
    arxiv = "2211.16231"
    year = 2023
    venue = "AAAI"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"ce_weight": Float(0.1, 1.0, log=True),
                    "kd_weight": Float(0.03, 3.0, log=True),
                    "lambda_min": Float(-2.0, 0.0),
                    "curriculum_epochs": Float(1.0, 20.0)}

    def __init__(self, ce_weight: float = 0.1, kd_weight: float = 0.9, t_start: float = 1.0,
                 t_end: float = 20.0, init: float = 1.0, lambda_max: float = 0.0, lambda_min: float = -1.0,
                 curriculum_epochs: float = 10.0, curriculum_fraction: float = 0.0,
                 standardize: bool = False) -> None:
        super().__init__()
        check_positive("ctkd", t_start=t_start, curriculum_epochs=curriculum_epochs)
        if not t_end >= 0:
            raise ConfigError(f"ctkd: t_end must be >= 0, got {t_end}")
        if not 0.0 <= curriculum_fraction <= 1.0:
            raise ConfigError(f"ctkd: curriculum_fraction must be in [0, 1] (0: use curriculum_epochs), "
                              f"got {curriculum_fraction}")
        self.ce_weight = ce_weight
        self.kd_weight = kd_weight
        self.t_start = t_start
        self.t_end = t_end
        self.init = init
        self.lambda_max = lambda_max
        self.lambda_min = lambda_min
        self.curriculum_epochs = curriculum_epochs
        self.curriculum_fraction = curriculum_fraction
        self.standardize = standardize
        # shape (1,) like the authors' Global_T, so their checkpoints' value maps one to one
        self.theta = nn.Parameter(torch.full((1,), float(init)))

    def gradient_scale(self, epoch: int, total_epochs: int | None = None) -> float:
        """lambda of the curriculum at ``epoch`` (counted from 1)."""
        span = self.curriculum_epochs
        if self.curriculum_fraction > 0 and total_epochs:
            span = max(self.curriculum_fraction * total_epochs, 1e-12)
        return cosine_curriculum(epoch, span, self.lambda_max, self.lambda_min)

    @property
    def temperature(self) -> float:
        """The current learned temperature."""
        return float(self.t_start + self.t_end * torch.sigmoid(self.theta.detach()))

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, total_epochs: int | None = None, **batch: Any) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        if t is None:
            raise ConfigError("ctkd needs a teacher")
        ce = F.cross_entropy(s, target)
        theta = _ScaleGradient.apply(self.theta, self.gradient_scale(epoch, total_epochs))
        tau = (self.t_start + self.t_end * torch.sigmoid(theta.float()))[0]
        if self.standardize:
            s, t = standardize(s), standardize(t)
        kl = kl_with_temperature(t, s, tau)
        return {"ce": self.ce_weight * ce, "kd": self.kd_weight * tau ** 2 * kl}


register_loss("ctkd+ls", CTKD, defaults={"standardize": True, "kd_weight": 9.0},
              space={**CTKD.search_space, "kd_weight": Float(0.3, 20.0, log=True)})
