"""Built-in losses: one module per method; each registers itself on import."""
from __future__ import annotations

import importlib
import pkgutil

from .base import DistillLoss, check_logits, kl_with_temperature, standardize, warmup_factor

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "base":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["DistillLoss", "check_logits", "kl_with_temperature", "standardize", "warmup_factor"]
