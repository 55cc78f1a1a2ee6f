"""Teachers with access levels, as a user of a model API would see them.

=========  ====================================================================
access     what the student side receives (as "logits" for the loss)
=========  ====================================================================
features   white-box: the raw logits, and on request the final feature map
           (``feature_map``, before global pooling) and the ``classifier``
logits     the raw logits
probs      probabilities; handed to losses as log-probabilities, which differ
           from the logits by a per-row constant (softmax-based losses are
           unchanged)
topk:K     the K largest probabilities; the remaining mass is spread evenly
           over the other classes (what a student can assume, knowing nothing)
label      the top-1 class only; handed over as a one-hot row of logits
           (0 for the label, -1e4 elsewhere: one-hot at any temperature)
=========  ====================================================================

Every image sent counts as one query; ``budget`` caps them, and a query that
would exceed it is refused (``AccessError``) before the model runs. Losses get
only ``Teacher.__call__``'s output; ``raw_logits`` and ``model`` are for
kdzoo's own bookkeeping (evaluating the teacher), like an API provider's
published accuracy.
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from .errors import AccessError, ConfigError, did_you_mean

# Teacher access levels, strongest first: the one table every list of levels in kdzoo derives from. A loss
# declares the weakest level it can work with in ``requires``; "none" means it never looks at the teacher.
# "features" is white-box: logits plus the final feature map and the classifier. "topk" takes its K ("topk:5").
ACCESS_ORDER = ("features", "logits", "probs", "topk", "label", "none")
WITH_K = "topk"
ACCESS_RANK = {name: len(ACCESS_ORDER) - 1 - i for i, name in enumerate(ACCESS_ORDER)}
_NAMES = ACCESS_ORDER[:-1]                                       # what a teacher can give ("none": no teacher)
LEVELS = tuple(f"{n}:K" if n == WITH_K else n for n in _NAMES)   # as a recipe or the command line writes them
ACCESS_HELP = " | ".join(LEVELS)
ONE_HOT_GAP = 1e4


def parse_access(access: str) -> tuple[str, int | None]:
    """``"topk:5"`` -> ("topk", 5); validates the level name."""
    name, _, k = str(access).partition(":")
    if name not in _NAMES:
        raise ConfigError(f"unknown teacher access '{access}'{did_you_mean(name, list(_NAMES))} "
                          f"(choose one of: {', '.join(LEVELS)})")
    if name == "topk":
        if not k.isdigit() or int(k) < 1:
            raise ConfigError(f"teacher access '{access}' needs a positive K, e.g. 'topk:5'")
        return name, int(k)
    if k:
        raise ConfigError(f"teacher access '{access}' takes no ':' argument")
    return name, None


def check_access(loss_name: str, requires: str, access: str) -> None:
    """Refuse a loss that needs more teacher access than given, before any training."""
    level = "none" if access == "none" else parse_access(access)[0]
    if ACCESS_RANK[requires] > ACCESS_RANK[level]:
        given = "no teacher" if level == "none" else f"the teacher gives '{access}'"
        raise AccessError(f"loss '{loss_name}' needs teacher access '{requires}' or richer, but {given}; "
                          f"pick a loss that works with that or give more access")


def model_feature_map(model: nn.Module) -> Any:
    """``model.forward_feature_map``, or a one-line ConfigError naming the model."""
    fn = getattr(model, "forward_feature_map", None)
    if fn is None or not hasattr(model, "classifier"):
        name = getattr(model, "name", None) or type(model).__name__
        raise ConfigError(f"model {name} exposes no spatial feature map (forward_feature_map and "
                          f"classifier), which this loss needs; use a convolutional model such as the CIFAR zoo "
                          f"or fmnist_cnn_tiny")
    return fn


def model_classifier(model: nn.Module) -> nn.Module:
    """``model.classifier`` (pooled features -> logits), or a one-line ConfigError naming the model."""
    model_feature_map(model)
    return model.classifier


class Teacher:
    """A frozen teacher model behind an access level, counting the images it is asked about."""

    def __init__(self, model: nn.Module, access: str = "logits", budget: int | None = None) -> None:
        self.level, self.k = parse_access(access)
        self.access = access
        self.model = model.eval().requires_grad_(False)
        if budget is not None and (int(budget) != budget or budget < 0):
            raise ConfigError(f"teacher query budget must be a non-negative integer, got {budget}")
        self.budget = None if budget is None else int(budget)
        self.queries = 0
        # white-box: the map of the last query, so that feature_map(x) on the same batch needs no second forward
        self._last_map: tuple[Tensor, Tensor] | None = None

    @property
    def remaining(self) -> int | None:
        """Images the teacher may still be asked about (None: no budget)."""
        return None if self.budget is None else self.budget - self.queries

    def _charge(self, n: int) -> None:
        if self.budget is not None and self.queries + n > self.budget:
            raise AccessError(f"teacher query budget exceeded: {self.queries} of {self.budget} images used, "
                              f"{n} more requested; raise the budget or train for fewer steps")
        self.queries += n

    @torch.no_grad()
    def raw_logits(self, x: Tensor) -> Tensor:
        """The model's own logits; for kdzoo's internals (evaluation), never counted or exposed."""
        return self.model(x).float()

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """Query the teacher on a batch; returns what this access level exposes, as logits."""
        self._charge(x.shape[0])
        if self.model.training:  # an API answers in inference mode, whoever touched the model
            self.model.eval()
        if self.level == "features" and hasattr(self.model, "forward_feature_map"):
            # one forward gives logits and map; every run at this level computes its logits this way,
            # so whether a map is asked for later cannot change them
            fmap = self.model.forward_feature_map(x)
            self._last_map = (x, fmap)
            return self.model.classifier(fmap.mean(dim=(2, 3))).float()
        return self.expose(self.model(x).float())

    def expose(self, z: Tensor) -> Tensor:
        """Reduce raw logits to what the access level reveals."""
        if self.level in ("features", "logits"):
            return z
        if self.level == "probs":
            return torch.log_softmax(z, dim=1)
        if self.level == "label":
            return self.one_hot(z.argmax(dim=1), z.shape[1])
        p = torch.softmax(z, dim=1)
        k = min(self.k or 1, z.shape[1])
        top, idx = p.topk(k, dim=1)
        rest = z.shape[1] - k
        fill = ((1 - top.sum(1, keepdim=True)).clamp_min(1e-12) / max(rest, 1)) if rest else top[:, :1]
        out = fill.expand_as(p).clone().scatter_(1, idx, top)
        return out.clamp_min(1e-12).log()

    def _white_box(self, what: str) -> None:
        if self.level != "features":
            raise AccessError(f"the teacher's {what} needs teacher access 'features', but the teacher gives "
                              f"'{self.access}'; give white-box access (access: features) or pick a logit-only loss")

    @property
    def classifier(self) -> nn.Module:
        """The module mapping pooled features (N, C) to logits; white-box access only."""
        self._white_box("classifier")
        return model_classifier(self.model)

    @torch.no_grad()
    def feature_map(self, x: Tensor) -> Tensor:
        """The final feature map (N, C, H, W) before global pooling; white-box access only. Free right after
        a query on the same batch (it came with that answer), otherwise a query of its own."""
        self._white_box("feature map")
        forward_map = model_feature_map(self.model)
        last, self._last_map = self._last_map, None
        if last is not None and last[0] is x:
            return last[1].float()
        self._charge(x.shape[0])
        if self.model.training:
            self.model.eval()
        return forward_map(x).float()

    @staticmethod
    def one_hot(labels: Tensor, num_classes: int) -> Tensor:
        out = torch.full((labels.shape[0], num_classes), -ONE_HOT_GAP, device=labels.device)
        return out.scatter_(1, labels[:, None], 0.0)

    def digest(self) -> str:
        """Content hash of the teacher's weights: names "which teacher" for caches, reveals nothing else."""
        h = hashlib.sha256()
        for name, v in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(str((tuple(v.shape), str(v.dtype))).encode())
            h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    def to(self, device: torch.device | str) -> "Teacher":
        self.model.to(device)
        return self

    def __repr__(self) -> str:
        return f"Teacher(access={self.access!r}, queries={self.queries}, budget={self.budget})"
