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


def train_size(name: str) -> int | None:
    """The training images of dataset ``name`` as its module declares them (``train_size`` on its factory), for
    work estimates without loading it; None for a dataset that declares none (a plugin's) or is not registered."""
    if name not in DATASETS:
        return None
    size = getattr(DATASETS.entry(name).factory, "train_size", None)
    return int(size) if size is not None else None


__all__ = ["Augment", "DataBundle", "DatasetLoader", "TensorLoader", "TensorSplit", "build_dataset",
           "find_dataset_dir", "make_loader", "split_train_val", "train_size"]
