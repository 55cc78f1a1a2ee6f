"""Model zoo. Every model maps images to logits and also offers
``forward_features(x) -> (N, num_features)`` (the penultimate, pooled
features) for transfer evaluation. Modules here register themselves on import.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

from torch import nn

from ..registry import MODELS

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def create(name: str, num_classes: int, in_channels: int | None = None,
           image_size: tuple[int, int] | int | None = None, **kwargs: Any) -> nn.Module:
    """Build model ``name`` for a dataset; ``timm:NAME`` / ``tv:NAME`` go to the external adapters.

    ``in_channels`` and ``image_size`` are passed only to factories that take them.
    """
    if ":" in name:
        from .external import create_external  # timm/torchvision only for tv:/timm: names (slow imports)
        return create_external(name, num_classes=num_classes, in_channels=in_channels,
                               image_size=image_size, **kwargs)
    entry = MODELS.entry(name)
    MODELS.check_kwargs(name, kwargs)
    params = inspect.signature(entry.factory).parameters
    fixed: dict[str, Any] = {"num_classes": num_classes}
    if in_channels is not None and "in_channels" in params:
        fixed["in_channels"] = in_channels
    if image_size is not None and "image_size" in params:
        fixed["image_size"] = image_size
    return entry.factory(**{**entry.defaults, **kwargs, **fixed})
