"""kdzoo: logit knowledge distillation, comparable and easy to use."""
from __future__ import annotations

import inspect
from typing import Any

from .errors import AccessError, CheckpointError, ConfigError, DataNotFoundError, KdzooError
from .registry import DATASETS, LOSSES, MODELS, register_dataset, register_loss, register_model
from .losses import DistillLoss  # registers the built-in losses
from . import stages  # noqa: F401  (registers the built-in preparation stages)

__version__ = "0.1.0"


def build_loss(name: str, **hparams: Any) -> DistillLoss:
    """Build a registered loss; unknown names or hyperparameters raise ConfigError."""
    return LOSSES.build(name, **hparams)


def list_losses() -> list[str]:
    return LOSSES.names()


def loss_info(name: str) -> dict[str, Any]:
    """Paper, arXiv id, defaults, required teacher access and summary of a loss."""
    entry = LOSSES.entry(name)
    cls = entry.factory
    doc = (cls.__doc__ or inspect.getmodule(cls).__doc__ or "").strip()
    paper = getattr(cls, "paper", "")
    # requires/needs may be set per instance (e.g. mcld with normalize="l2" needs raw logits): read them from a built loss
    try:
        built: Any = build_loss(name)
    except (ConfigError, TypeError):  # a plugin whose factory takes required arguments
        built = cls
    if entry.defaults.get("standardize") and "standardization" not in paper:
        paper += " + logit standardization (Sun et al., CVPR 2024, arXiv 2403.01427)"
    return {
        "name": name,
        "paper": paper,
        "arxiv": getattr(cls, "arxiv", ""),
        "year": int(getattr(cls, "year", 0) or 0),
        "venue": getattr(cls, "venue", ""),
        "requires": getattr(built, "requires", "logits"),
        "needs": sorted(getattr(built, "needs", ())),  # extra inputs from the engine (e.g. "strong_view")
        "defaults": entry.hyperparameters(),
        "source": entry.source,
        "summary": doc.splitlines()[0] if doc else "",
    }


def build_model(name: str, num_classes: int, **kwargs: Any):
    """Build a registered model (also ``timm:NAME`` and ``tv:NAME``) returning logits."""
    from . import models  # noqa: F401  (registers built-in models)
    return models.create(name, num_classes=num_classes, **kwargs)


def list_models() -> list[str]:
    from . import models  # noqa: F401
    return MODELS.names()


def list_datasets() -> list[str]:
    from . import data  # noqa: F401
    return DATASETS.names()


__all__ = [
    "AccessError", "CheckpointError", "ConfigError", "DataNotFoundError", "DistillLoss", "KdzooError",
    "build_loss", "build_model", "list_datasets", "list_losses", "list_models", "loss_info",
    "register_dataset", "register_loss", "register_model", "__version__",
]
