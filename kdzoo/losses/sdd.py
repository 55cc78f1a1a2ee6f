"""sdd: Wei, Luo & Luo, CVPR 2024, "Scale Decoupled Distillation", arXiv 2403.13512.

Authors' code: github.com/shicaiwei123/SDD-CVPR2024 (commit e412036), files
mdistiller/distillers/KD.py (sdd_kd_loss), SDD_DKD.py (multi_dkd), SDD_nkd.py
(multi_nkd_loss), mdistiller/models/cifar/utils.py (SPP).

The final feature maps f (N, C, H, W) of student and teacher are average-pooled
to an s x s grid for every scale s in ``scales`` (their M); each of the
R = sum(s^2) cells is a region whose pooled (N, C) feature goes through the
model's own classifier, giving region logits z_r (r = 0 is the 1 x 1 cell).
``pooling = "spp"`` (default) pools as the authors' SPP module does: the map is
adaptively average-pooled to a 4 x 4 grid (G x G, G the least common multiple
of 4 and the scales, for scales other than theirs) and every scale is the block
mean of that grid; ``"per_scale"`` pools every scale from the map itself
(kdzoo's earlier pooling). The two agree when H and W are multiples of G, or at
most 4 with scales (1, 2); on other maps (6 x 6, 7 x 7, 14 x 14: the
Fashion-MNIST convnets, ImageNet ResNets) adaptive pooling's overlapping
windows make them differ: 4-39% in the distillation term and 12-72% (relative
L2) in the gradient on the student's map on the golden inputs of
tests/test_losses_sdd.py, where "spp" equals the authors' code. With the base logit loss l (kd, dkd or nkd) evaluated on
every (region, sample) row and the teacher's region predictions,

    w_{r,i} = complementary_weight   if r > 0 and [argmax t_{r,i} = y_i] != [argmax t_{0,i} = y_i]
              1                      otherwise (consistent regions, and the global one)
    loss    = ce_weight * CE(s_global, y) + warmup(epoch) * sum_{r,i} w_{r,i} l(z^s_{r,i}, z^t_{r,i}) / (R N)

(their "complementary" regions: the local teacher prediction disagrees in
correctness with the global one). kdzoo evaluates the base through the
registry, as its batch mean over all R N rows plus (complementary_weight - 1)
times its mean over the complementary rows scaled by their share, which equals
the weighted sum above for any per-row loss; the base's own "ce" term (on
region rows) is dropped and CE is taken on the global student logits with the
base's ``ce_weight``, as the authors do.

Defaults (authors' CIFAR-100 setting for resnet32x4 -> resnet8x4): ``base = "kd"``,
``scales = (1, 2)``: their resnet32x4 -> resnet8x4 runs (teacher_resnet32x4.sh:24
SD-KD, :44 SD-NKD), and every same-architecture pair in their scripts
(teacher_vgg.sh:11, :29, :47), use M = [1, 2]; the heterogeneous pairs of their
published CIFAR-100 table (README.md "Main result") and the README's example
command use [1, 2, 4]. ``complementary_weight = 2`` (KD.py:84-85,
SDD_DKD.py:98-99, SDD_nkd.py:138-139). Per base:

- ``kd``: T = 4, ce 0.1, kd 0.9 (mdistiller/engine/cfg.py:64-67), no warm-up
  (SDD_KD.forward_train has it commented out, KD.py:142);
- ``dkd``: T = 4, ce 1, alpha 1, beta 8 (cfg.py:183-187), warm-up 20 epochs
  (train_origin.py:198 ``--warmup`` default, read in SDD_DKD.py:155);
- ``nkd``: T = 4, gamma = 8, ce 1, warm-up 20: SDD_nkd.py:162-165 read DKD's
  T, BETA and WARMUP (cfg.py:184-187) for NKD's temperature and gamma.

``warmup`` is applied here, not by the base (kdzoo's dkd is built with
warmup 0); ``base_args`` overrides the base's hyperparameters.

Quirks of the authors' code, not reproduced:
- SDD_nkd.py's nkd_loss builds the non-target mask with ``ones_like(...).scatter_(1,
  label, 1)``, which keeps the target class in the "non-target" part (the bug
  fixed in cls_KD after 9466b3f); kdzoo's base is its own nkd, the fixed one;
- sdd_kd_loss zeroes NaN KL entries and every variant replaces a NaN/Inf loss
  by 0 (printing "inf"); kdzoo lets the trainer mark the run diverged instead;
- SPP's region 0 (the 1 x 1 cell of the 4 x 4 grid) is not the model's global
  average pool on maps whose side is not a multiple of 4; kdzoo, like them,
  takes CE on the model's own logits and distills region 0 as pooled.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, did_you_mean
from ..registry import LOSSES, register_loss
from ..space import Float, Int
from .base import DistillLoss, check_logits, warmup_factor

BASES = ("kd", "dkd", "nkd")
# The authors' settings per base where kdzoo's own defaults differ (see the docstring).
BASE_DEFAULTS: dict[str, dict[str, Any]] = {"kd": {}, "dkd": {"warmup": 0}, "nkd": {"temperature": 4.0, "gamma": 8.0}}
WARMUP_DEFAULTS = {"kd": 0.0, "dkd": 20.0, "nkd": 20.0}
POOLINGS = ("spp", "per_scale")
SPP_GRID = 4   # the authors' SPP pools every map to 4 x 4 first (mdistiller/models/cifar/utils.py)


def region_logits(fmap: Tensor, classifier: nn.Module, scales: Sequence[int], pooling: str = "spp") -> Tensor:
    """(R*N, K) logits of every pooled region, region-major: row r*N + i is region r of sample i."""
    if pooling == "spp":   # every scale divides the grid, so its cells are exact block means of the grid
        fmap = F.adaptive_avg_pool2d(fmap, math.lcm(SPP_GRID, *scales))
    cells = [F.adaptive_avg_pool2d(fmap, s).flatten(2) for s in scales]   # each (N, C, s*s)
    pooled = torch.cat(cells, dim=2).permute(2, 0, 1)                     # (R, N, C)
    return classifier(pooled.reshape(-1, pooled.shape[2]))


def region_weights(teacher_rows: Tensor, target: Tensor, n: int, complementary_weight: float) -> Tensor:
    """Per-row weight: ``complementary_weight`` where a region's teacher correctness differs from the global one."""
    correct = (teacher_rows.argmax(dim=1) == target.repeat(teacher_rows.shape[0] // n)).view(-1, n)
    flipped = correct != correct[:1]   # region 0 is the global cell, never flipped against itself
    return torch.where(flipped, complementary_weight, 1.0).reshape(-1)


@register_loss("sdd")
class SDD(DistillLoss):
    requires = "features"
    needs = frozenset({"feature_maps"})
    paper = "Wei et al., CVPR 2024, Scale Decoupled Distillation"
    arxiv = "2403.13512"
    year = 2024
    venue = "CVPR"

    # the ranges kdzoo tune searches (sources and reasons: docs/methods.md, "Search spaces")
    search_space = {"complementary_weight": Float(0.2, 4.0, log=True), "warmup": Int(0, 20)}

    def __init__(self, base: str = "kd", scales: Sequence[int] = (1, 2), complementary_weight: float = 2.0,
                 warmup: float | None = None, base_args: dict[str, Any] | None = None, pooling: str = "spp") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"sdd: unknown pooling '{pooling}'{did_you_mean(pooling, POOLINGS)} "
                              f"(choose one of: {', '.join(POOLINGS)})")
        if base not in BASES:
            raise ConfigError(f"sdd: unknown base '{base}'{did_you_mean(base, BASES)} (choose one of: {', '.join(BASES)})")
        scales = [int(s) for s in scales] if isinstance(scales, (list, tuple)) else []
        if not scales or scales[0] != 1 or any(b <= a for a, b in zip(scales, scales[1:])):
            raise ConfigError("sdd: scales must be increasing grid sizes starting at 1 (the global region), "
                              "e.g. [1, 2, 4]")
        base_args = dict(base_args or {})
        if "warmup" in base_args:
            raise ConfigError("sdd: set the warm-up with sdd's own 'warmup', not in base_args")
        if complementary_weight < 0:
            raise ConfigError(f"sdd: complementary_weight must be >= 0, got {complementary_weight}")
        self.base = base
        self.pooling = pooling
        self.scales = scales
        self.complementary_weight = float(complementary_weight)
        self.warmup = WARMUP_DEFAULTS[base] if warmup is None else float(warmup)
        if self.warmup < 0:
            raise ConfigError(f"sdd: warmup must be >= 0 epochs, got {self.warmup}")
        self.base_loss = LOSSES.build(base, **{**BASE_DEFAULTS[base], **base_args})
        self.ce_weight = float(getattr(self.base_loss, "ce_weight", 1.0))

    def forward(self, student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                *, epoch: int = 1, **batch: Any) -> dict[str, Tensor]:
        s, _ = check_logits(student_logits, teacher_logits, target)
        try:
            s_map, t_map = batch["student_feature_map"], batch["teacher_feature_map"]
            s_head, t_head = batch["student_classifier"], batch["teacher_classifier"]
        except KeyError:
            raise ConfigError("sdd needs the student's and teacher's feature maps and classifiers; train it "
                              "through kdzoo's Trainer with teacher access 'features'") from None
        if s_map.dim() != 4 or t_map.dim() != 4 or s_map.shape[0] != s.shape[0] or t_map.shape[0] != s.shape[0]:
            raise ConfigError(f"sdd: feature maps must be (N, C, H, W) with N={s.shape[0]}, got "
                              f"{tuple(s_map.shape)} and {tuple(t_map.shape)}")
        n = s.shape[0]
        zs = region_logits(s_map.float(), s_head, self.scales, self.pooling).float()
        with torch.no_grad():
            zt = region_logits(t_map.float(), t_head, self.scales, self.pooling).float()
        rows = target.repeat(len(zs) // n)
        w = region_weights(zt, target, n, self.complementary_weight)
        terms = {k: v for k, v in self.base_loss(zs, zt, rows, epoch=epoch).items() if k != "ce"}
        extra = w != 1.0
        if bool(extra.any()):
            share = (self.complementary_weight - 1.0) * extra.float().mean()
            sub = self.base_loss(zs[extra], zt[extra], rows[extra], epoch=epoch)
            terms = {k: v + share * sub[k] for k, v in terms.items()}
        factor = warmup_factor(epoch, self.warmup)
        return {"ce": self.ce_weight * F.cross_entropy(s, target), **{k: factor * v for k, v in terms.items()}}
