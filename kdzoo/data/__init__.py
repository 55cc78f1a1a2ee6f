"""Datasets and loaders. Each dataset module registers itself on import."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..registry import DATASETS
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val
from .loader import DatasetLoader, TensorLoader, make_loader

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name not in ("base", "loader"):
        importlib.import_module(f"{__name__}.{_mod.name}")


def build_dataset(name: str, **kwargs: Any) -> DataBundle:
    """Load dataset ``name`` (see ``kdzoo list datasets``)."""
    return DATASETS.build(name, **kwargs)


__all__ = ["Augment", "DataBundle", "DatasetLoader", "TensorLoader", "TensorSplit", "build_dataset",
           "find_dataset_dir", "make_loader", "split_train_val"]
