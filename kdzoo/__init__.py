"""kdzoo: logit knowledge distillation, comparable and easy to use."""
from __future__ import annotations

import inspect
from typing import Any

from .errors import AccessError, CheckpointError, ConfigError, DataNotFoundError, KdzooError
from .registry import DATASETS, LOSSES, MODELS, register_dataset, register_loss, register_model
from .losses import DistillLoss  # registers the built-in losses
from .losses.base import needs_of, requirements

__version__ = "0.1.0"


def build_loss(name: str, **hparams: Any) -> DistillLoss:
    """Build a registered loss; unknown names or hyperparameters raise ConfigError."""
    return LOSSES.build(name, **hparams)


def list_losses() -> list[str]:
    return LOSSES.names()


def _first_line(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, KdzooError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def loss_info(name: str) -> dict[str, Any]:
    """Paper, arXiv id, defaults, search space, required teacher access and summary of a loss.

    A plugin's bad search-space declaration does not stop the rest: ``space`` is then None and ``space_error``
    says what is wrong in one line (the error that tuning the loss, or ``kdzoo list losses --space``, raises)."""
    entry = LOSSES.entry(name)
    cls = entry.factory
    doc = (cls.__doc__ or inspect.getmodule(cls).__doc__ or "").strip()
    paper = getattr(cls, "paper", "")
    # requires/needs may be set per instance (e.g. mcld with normalize="l2" needs raw logits): read them from a built loss
    try:
        built: Any = build_loss(name)
    except Exception:  # a plugin whose factory takes required arguments, or fails: its class's declarations
        built = cls
    try:
        space: dict[str, Any] | None = {k: p.as_dict() for k, p in LOSSES.search_space(name).items()}
        space_error = ""
    except Exception as exc:  # one plugin's mistake must not hide every other loss (kdzoo list losses)
        space, space_error = None, _first_line(exc)
    if entry.defaults.get("standardize") and "standardization" not in paper:
        paper += " + logit standardization (Sun et al., CVPR 2024, arXiv 2403.01427)"
    return {
        "name": name,
        "paper": paper,
        "arxiv": getattr(cls, "arxiv", ""),
        "year": int(getattr(cls, "year", 0) or 0),
        "venue": getattr(cls, "venue", ""),
        "requires": requirements(built),
        "needs": sorted(needs_of(built)),  # extra inputs from the engine (e.g. "strong_view")
        "defaults": entry.hyperparameters(),
        # the ranges kdzoo tune searches, as plain data ({} when none; kdzoo.space for the types)
        "space": space,
        "space_error": space_error,
        "source": entry.source,
        "summary": doc.splitlines()[0] if doc else "",
    }


def build_model(name: str, num_classes: int, **kwargs: Any):
    """Build a registered model (also ``timm:NAME`` and ``tv:NAME``) returning logits."""
    from . import models  # the factory that also knows timm:/tv: names
    return models.create(name, num_classes=num_classes, **kwargs)


def list_models() -> list[str]:
    return MODELS.names()


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "AccessError", "CheckpointError", "ConfigError", "DataNotFoundError", "DistillLoss", "KdzooError",
    "build_loss", "build_model", "list_datasets", "list_losses", "list_models", "loss_info",
    "register_dataset", "register_loss", "register_model", "__version__",
]
