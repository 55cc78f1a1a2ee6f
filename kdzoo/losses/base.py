"""The interface every distillation loss implements, and the checks and formulas losses share.

Every helper that more than one loss uses lives here, so no loss file imports another's
(tests/test_layering.py enforces it). The loss contract is described in docs/design.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, did_you_mean

# What a loss may declare in ``needs``; the engine then passes extra keyword arguments to forward:
#   "strong_view": student_logits_strong, teacher_logits_strong -- both models' responses on a
#                  strongly augmented view of the same images (kdzoo.engine.views), made as the
#                  loss's ``strong_view`` attribute names (one of STRONG_VIEWS; "authors" if unset)
#   "feature_maps": student_feature_map, teacher_feature_map (N, C, H, W, before global pooling),
#                   student_classifier, teacher_classifier (pooled (N, C) features -> logits)
#                   (kdzoo.engine.feature_maps)
NEEDS = frozenset({"strong_view", "feature_maps"})
# How the strong view is made (kdzoo.engine.views): "authors" -- the images again with the data's own
# crop/flip drawn afresh, then MLKD's and CRLD's authors' RandAugment (kdzoo.data.randaugment);
# "weak_randaugment" -- torchvision's RandAugment(2, 10) on the weak view's own pixels.
STRONG_VIEWS = ("authors", "weak_randaugment")


@dataclass(frozen=True)
class Preparation:
    """A preparation stage a loss declares it needs before student training (run by the engine,
    kdzoo/engine/prepare.py): the registered stage (``kdzoo.registry.STAGES``), the settings that
    identify what it makes (with the teacher, the student-side images and the seed they form the
    cache key, so equal settings reuse the cached product), and the teacher queries the student phase
    will spend up front (checked against the query budget before anything runs)."""
    stage: str
    settings: dict[str, Any] = field(default_factory=dict)
    student_queries: int = 0


class DistillLoss(nn.Module):
    """Base class: ``forward`` returns a dict of already weighted loss terms.

    ``sum(terms.values())`` is the full objective (cross-entropy included, under
    the key ``"ce"``). Subclasses take every hyperparameter as a named keyword
    in ``__init__`` and set the class attributes below for ``kdzoo list``.

    ``requires`` is the weakest teacher access the loss works with (an access level
    of kdzoo.teachers, or "none" when it never looks at the teacher). The class
    value is the default; an instance may change it from its hyperparameters
    (mcld with ``normalize="l2"`` needs raw logits), so every check reads it from
    the built loss.

    ``hashed_when_set`` names hyperparameters added after runs of the loss were
    hashed, with their defaults: at the default they stay out of the run hash
    (kdzoo.bench.plan.resolved_loss_kwargs), so those runs keep their hashes.
    """

    requires: str = "logits"
    # extra inputs the engine must provide ("strong_view", "feature_maps"); may be set per instance
    needs: frozenset[str] = frozenset()
    paper: str = ""
    arxiv: str = ""
    year: int = 0          # publication year of the paper (0: none, e.g. a baseline)
    venue: str = ""        # where it appeared: "CVPR", "NeurIPS", "arXiv" (preprint only), ...
    hashed_when_set: dict[str, Any] = {}

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, target: Tensor,
                *, epoch: int = 1, **batch: Any) -> dict[str, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def preparation(self, ctx: Any) -> Preparation | None:
        """The preparation stage this loss needs, or None (most losses). ``ctx`` is the engine's
        PrepareContext (teacher and its access level, data, config); a bad combination raises here,
        before any stage runs."""
        return None

    def use_prepared(self, product: Any, ctx: Any) -> None:
        """Receive the stage's product (e.g. a trained generator) before training; may replace
        ``ctx.train_loader`` (kdzoo.engine.prepare.PrepareContext). Called only when ``preparation``
        declares a stage."""
        raise NotImplementedError(f"{type(self).__name__} declares a preparation stage but no use_prepared")

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items()
                         if not k.startswith("_") and k != "training" and isinstance(v, (int, float, str, bool)))


def requirements(loss: Any) -> str:
    """The weakest teacher access ``loss`` works with: its ``requires``, "logits" when it declares none.

    Pass the built loss (an instance may change it from its hyperparameters); a class gives its default.
    """
    return str(getattr(loss, "requires", "logits"))


def needs_of(loss: Any) -> frozenset[str]:
    """The extra inputs (``NEEDS``) a built loss declares; read from the instance, which may override the class."""
    return frozenset(getattr(loss, "needs", ()) or ())


def strong_view_of(loss: Any) -> str:
    """How the strong view of a loss needing one is made: its ``strong_view`` attribute, "authors" if unset."""
    return str(getattr(loss, "strong_view", STRONG_VIEWS[0]))


def check_strong_view_name(name: str, view: str) -> str:
    if view not in STRONG_VIEWS:
        raise ConfigError(f"{name}: unknown strong_view '{view}'{did_you_mean(view, STRONG_VIEWS)} "
                          f"(choose one of: {', '.join(STRONG_VIEWS)})")
    return view


def has_preparation(loss: Any) -> bool:
    """Whether a loss (instance or class) declares a preparation stage; such a loss trains alone."""
    cls = loss if isinstance(loss, type) else type(loss)
    return isinstance(cls, type) and issubclass(cls, DistillLoss) and cls.preparation is not DistillLoss.preparation


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


def check_strong_view(name: str, student_strong: Tensor | None, teacher_strong: Tensor | None,
                      target: Tensor) -> tuple[Tensor, Tensor]:
    """The responses on the strong view (a loss with ``needs = {"strong_view"}``), checked like the logits."""
    if student_strong is None or teacher_strong is None:
        raise ConfigError(f"{name} needs the strong view (student_logits_strong, teacher_logits_strong); "
                          "train it through kdzoo's Trainer, which provides them")
    return check_logits(student_strong, teacher_strong, target)


def standardize(z: Tensor, eps: float = 1e-7) -> Tensor:
    """Logit standardization (Sun et al. 2024): z-score each row, unbiased std."""
    if z.shape[1] < 2:
        raise ConfigError("logit standardization needs at least 2 classes")
    return (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + eps)


def check_classes(name: str, logits: Tensor, min_classes: int = 2) -> None:
    """ConfigError for too few classes (instead of a NaN or meaningless loss).

    An empty batch needs no check here: ``check_logits`` refuses it first.
    """
    if logits.shape[1] < min_classes:
        raise ConfigError(f"{name}: needs at least {min_classes} classes, got C={logits.shape[1]}")


def check_positive(name: str, **values: float) -> None:
    """ConfigError naming the first of ``values`` (e.g. temperature=4.0) that is not > 0."""
    for key, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name}: {key} must be > 0, got {value}")


def kl_per_row(log_p_t: Tensor, log_p_s: Tensor) -> Tensor:
    """KL(p_t || p_s) of every row from log-probabilities, summed over classes: shape (N,)."""
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def kl_from_log_probs(log_p_t: Tensor, log_p_s: Tensor) -> Tensor:
    """KL(p_t || p_s) from log-probabilities, summed over classes, averaged over the batch."""
    return kl_per_row(log_p_t, log_p_s).mean()


def kl_with_temperature(teacher_logits: Tensor, student_logits: Tensor, temperature: float) -> Tensor:
    """KL(softmax_T(t) || softmax_T(s)) summed over classes, averaged over the batch."""
    return kl_from_log_probs(torch.log_softmax(teacher_logits / temperature, dim=1),
                             torch.log_softmax(student_logits / temperature, dim=1))


def binary_log_probs(logits: Tensor, index: Tensor, temperature: float) -> Tensor:
    """(N, 2) log of [p_k, 1 - p_k] with p = softmax(logits / T) and k = index (per row)."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    hit = F.one_hot(index, logits.shape[1]).bool()
    log_k = log_p.gather(1, index[:, None])
    log_rest = log_p.masked_fill(hit, float("-inf")).logsumexp(dim=1, keepdim=True)
    return torch.cat([log_k, log_rest], dim=1)


def non_target(logits: Tensor, target: Tensor) -> Tensor:
    """The (N, C-1) logits of the classes other than each row's label."""
    keep = ~F.one_hot(target, logits.shape[1]).bool()
    return logits[keep].view(logits.shape[0], logits.shape[1] - 1)


def warmup_factor(epoch: int, warmup: float) -> float:
    """``min(epoch / warmup, 1)`` with epochs counted from 1; no warm-up when warmup <= 0."""
    return 1.0 if warmup <= 0 else min(float(epoch) / float(warmup), 1.0)
