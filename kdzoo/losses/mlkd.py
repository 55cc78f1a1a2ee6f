"""mlkd: Jin, Wang & Lin, "Multi-Level Logit Distillation", CVPR 2023.

Authors' code: Jin-Ying/Multi-Level-Logit-Distillation @ 5ee473f,
``mdistiller/distillers/KD_ours.py`` (class ``KD_ours``, the ``ours`` trainer
with weak and strong views). With levels L = (T, 3, 5, 2, 6), weak-view
logits s, t and strong-view logits s', t' it computes

    ce = ce_weight * (CE(s, y) + CE(s', y))
    kd = kd_weight * m_b * sum_{τ in L} KD_τ(s, t)                           (instance level, weak view)
       + kd_weight * (sum_{τ in T,3,5} KD_τ(s', t') + sum_{τ in 2,6} KD_τ(s, t))
    cc = kd_weight * m_c * sum_{τ in L} ||G_c(t) - G_c(s)||² / C,  G_c(z) = P_τ(z)ᵀ P_τ(z)   (class level)
    bc = kd_weight * m_b * sum_{τ in L} ||G_b(t) - G_b(s)||² / N,  G_b(z) = P_τ(z) P_τ(z)ᵀ   (batch level)

with KD_τ = τ² KL(softmax_τ(t) || softmax_τ(s)) averaged over the batch and
P_τ the (N, C) matrix of softmax_τ rows (Eq. 3-8 of the paper).

Quirks of the authors' code, reproduced because they are what it computes:

* The confidence "masks" only rescale. ``kd_loss``/``cc_loss``/``bc_loss`` are
  called with ``reduce=True`` (the per-sample ``reduce=False`` is commented
  out), so ``(scalar * mask).mean()`` is the scalar times the fraction of
  samples whose teacher confidence is at most its batch median (m_b, about
  1/2) or of classes whose summed teacher probability is at most the median
  (m_c). No sample is left out. (np.percentile(…, 50) is the linearly
  interpolated median, as ``torch.quantile`` computes it.)
* The "strong" KD sum uses the strong view for T, 3, 5 but the weak view for
  2 and 6 (``strong_kd_levels=3``), and the strong-view cc and bc terms are
  computed but never added to the objective, so they are not computed here.

Defaults (authors' CIFAR-100 settings, resnet32x4 -> resnet8x4): T = 4,
ce_weight = 0.1, kd_weight = 0.9 (``mdistiller/engine/cfg.py:61-64``; the
config ``configs/cifar100/ours/res32x4_res8x4.yaml`` keeps them), the extra
levels 3, 5, 2, 6 (``KD_ours.py:115-255``).

The strong view (``strong_view = "authors"``, kdzoo.engine.views) is theirs
(``mdistiller/dataset/cifar100.py``: ``get_cifar100_train_transform_strong``,
``RandAugment``): the image cropped and flipped independently of the weak view,
then two PIL operations drawn with replacement from 14 at uniformly random
magnitudes and a Cutout of up to half the side (kdzoo.data.randaugment).
``strong_view = "weak_randaugment"`` is kdzoo's earlier view: torchvision's
RandAugment(2, 10) on the weak view's pixels.

``mlkd+ls`` is the variant of logit standardization (Sun et al., CVPR 2024,
arXiv 2403.01427; sunshangquan/logit-standardization-KD @ f6e5aa5,
``mdistiller/distillers/MLKD.py``, run with ``--logit-stand --base-temp 2
--kd-weight 9`` per their README): the KD terms (not cc/bc) see z-scored
logits, T = 2, kd_weight = 9 (``tools/train.py:110-121``); everything else
as above (``MLKD.py:122-273``).

The teacher enters only through softmax_τ(t) and, for ``mlkd+ls``, z-scores of t: both are blind to
the per-row shift between logits and log-probabilities, so ``probs`` access suffices for both.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..registry import register_loss
from ..space import Float
from .base import (DistillLoss, check_logits, check_strong_view, check_strong_view_name, kl_with_temperature,
                   standardize)


def class_correlation_loss(s: Tensor, t: Tensor, temperature: float) -> Tensor:
    """||P_τ(t)ᵀP_τ(t) - P_τ(s)ᵀP_τ(s)||² / C: how differently the two models confuse pairs of classes."""
    ps, pt = F.softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1)
    return ((pt.t() @ pt - ps.t() @ ps) ** 2).sum() / s.shape[1]


def batch_correlation_loss(s: Tensor, t: Tensor, temperature: float) -> Tensor:
    """||P_τ(t)P_τ(t)ᵀ - P_τ(s)P_τ(s)ᵀ||² / N: how differently the two models relate pairs of images."""
    ps, pt = F.softmax(s / temperature, dim=1), F.softmax(t / temperature, dim=1)
    return ((pt @ pt.t() - ps @ ps.t()) ** 2).sum() / s.shape[0]


def below_median_fraction(values: Tensor) -> Tensor:
    """Fraction of ``values`` at most their (linearly interpolated) median, what the authors' masks reduce to."""
    return (values <= torch.quantile(values, 0.5)).float().mean()


@register_loss("mlkd")
class MLKD(DistillLoss):
    requires = "probs"
    needs = frozenset({"strong_view"})
    paper = "Jin et al. 2023, Multi-Level Logit Distillation"
    year = 2023
    venue = "CVPR"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"temperature": Float(1.0, 8.0, log=True), "ce_weight": Float(0.1, 1.0, log=True),
                    "kd_weight": Float(0.001, 3.0, log=True)}

    def __init__(self, temperature: float = 4.0, temperatures: tuple[float, ...] = (3.0, 5.0, 2.0, 6.0),
                 ce_weight: float = 0.1, kd_weight: float = 0.9, strong_kd_levels: int = 3,
                 standardize: bool = False, strong_view: str = "authors") -> None:
        super().__init__()
        self.strong_view = check_strong_view_name("mlkd", strong_view)
        levels = (float(temperature), *map(float, temperatures))
        if any(not tau > 0 for tau in levels):
            raise ConfigError(f"mlkd: temperatures must be > 0, got {levels}")
        if not 0 <= int(strong_kd_levels) <= len(levels):
            raise ConfigError(f"mlkd: strong_kd_levels must lie in [0, {len(levels)}], got {strong_kd_levels}")
        self.temperature = float(temperature)
        self.temperatures = tuple(map(float, temperatures))
        self.levels = levels
        self.ce_weight = ce_weight
        self.kd_weight = kd_weight
        self.strong_kd_levels = int(strong_kd_levels)
        self.standardize = standardize
        # every term sees the teacher through softmax(t / tau) or z-scores of t, both blind to a per-row
        # shift, so log-probabilities (access probs) give the same loss as logits, standardized or not

    def _kd(self, s: Tensor, t: Tensor, tau: float) -> Tensor:
        if self.standardize:
            s, t = standardize(s), standardize(t)
        return tau ** 2 * kl_with_temperature(t, s, tau)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor, *, epoch: int = 1,
                student_logits_strong: Tensor | None = None, teacher_logits_strong: Tensor | None = None,
                **batch) -> dict[str, Tensor]:
        s, t = check_logits(student_logits, teacher_logits, target)
        s2, t2 = check_strong_view("mlkd", student_logits_strong, teacher_logits_strong, target)
        with torch.no_grad():
            p_t = F.softmax(t, dim=1)
            m_b = below_median_fraction(p_t.max(dim=1).values)
            m_c = below_median_fraction(p_t.sum(dim=0))
        ce = self.ce_weight * (F.cross_entropy(s, target) + F.cross_entropy(s2, target))
        weak = sum(self._kd(s, t, tau) for tau in self.levels)
        # the authors' "strong" sum: the first levels on the strong view, the rest on the weak view
        strong = sum(self._kd(s2, t2, tau) if i < self.strong_kd_levels else self._kd(s, t, tau)
                     for i, tau in enumerate(self.levels))
        cc = sum(class_correlation_loss(s, t, tau) for tau in self.levels)
        bc = sum(batch_correlation_loss(s, t, tau) for tau in self.levels)
        w = self.kd_weight
        return {"ce": ce, "kd": w * m_b * weak + w * strong, "cc": w * m_c * cc, "bc": w * m_b * bc}


register_loss("mlkd+ls", MLKD, defaults={"standardize": True, "temperature": 2.0, "kd_weight": 9.0},
              space={**MLKD.search_space, "kd_weight": Float(0.001, 20.0, log=True)})
