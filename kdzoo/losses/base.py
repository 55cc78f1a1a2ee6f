"""The interface every distillation loss implements, and checks they share."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

# Teacher access levels, strongest first. A loss declares the weakest level it
# can work with in ``requires``; "none" means it never looks at the teacher.
# "features" is white-box: logits plus the final feature map and the classifier.
ACCESS_RANK = {"features": 5, "logits": 4, "probs": 3, "topk": 2, "label": 1, "none": 0}

# What a loss may declare in ``needs``, beyond the logits every loss gets.
NEEDS = frozenset({"strong_view", "feature_maps"})


class DistillLoss(nn.Module):
    """Base class: ``forward`` returns a dict of already weighted loss terms.

    ``sum(terms.values())`` is the full objective (cross-entropy included, under
    the key ``"ce"``). Subclasses take every hyperparameter as a named keyword
    in ``__init__`` and set the class attributes below for ``kdzoo list``.
    """

    requires: str = "logits"
    # extra inputs the engine provides as keyword arguments of ``forward`` (see NEEDS):
    # "feature_maps" -> student_feature_map, teacher_feature_map (N, C, H, W, before global
    # pooling), student_classifier, teacher_classifier (pooled (N, C) features -> logits)
    needs: frozenset[str] = frozenset()
    paper: str = ""
    arxiv: str = ""
    year: int = 0
    venue: str = ""

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, target: Tensor,
                *, epoch: int = 1, **batch: Any) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def prepare(self, ctx: Any) -> None:
        """Optional stage run once before student training (see kdzoo.engine.PrepareContext)."""
        return None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items()
                         if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool)))


def check_logits(student: Tensor, teacher: Tensor | None, target: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Validate shapes and labels; return float32 views of the logits.

    Losses compute in float32 so that AMP does not change their value.
    """
    if student.dim() != 2:
        raise ConfigError(f"student logits must have shape (N, C), got {tuple(student.shape)}")
    if student.shape[0] == 0:
        raise ConfigError("empty batch: a loss needs at least one sample")
    if teacher is not None and teacher.shape != student.shape:
        raise ConfigError(f"teacher logits {tuple(teacher.shape)} and student logits "
                          f"{tuple(student.shape)} differ in shape; do teacher and student have the same classes?")
    if target is not None:
        if target.dtype.is_floating_point or target.dtype == torch.bool or target.dtype.is_complex:
            raise ConfigError(f"targets must be integer class indices, got dtype {target.dtype}")
        if target.shape != student.shape[:1]:
            raise ConfigError(f"targets must have shape ({student.shape[0]},), got {tuple(target.shape)}")
        # Checking the range syncs with the device, so only do it where that is free.
        if target.device.type == "cpu" and target.numel() and (
                int(target.min()) < 0 or int(target.max()) >= student.shape[1]):
            raise ConfigError(f"labels must lie in [0, {student.shape[1] - 1}], got values in "
                              f"[{int(target.min())}, {int(target.max())}]")
    return student.float(), (teacher.float() if teacher is not None else None)


def standardize(z: Tensor, eps: float = 1e-7) -> Tensor:
    """Logit standardization (Sun et al. 2024): z-score each row, unbiased std."""
    if z.shape[1] < 2:
        raise ConfigError("logit standardization needs at least 2 classes")
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + eps)


def kl_with_temperature(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """KL(softmax_T(t) || softmax_T(s)) summed over classes, averaged over the batch."""
    log_p_t = torch.log_softmax(teacher_logits / temperature, dim=1)
    log_p_s = torch.log_softmax(student_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()


def warmup_factor(epoch: int, warmup: float) -> float:
    """``min(epoch / warmup, 1)`` with epochs counted from 1; no warm-up when warmup <= 0."""
    return 1.0 if warmup <= 0 else min(float(epoch) / float(warmup), 1.0)
