"""What every dataset returns, and where kdzoo looks for dataset files."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import ConfigError, DataNotFoundError
from .download import user_data_dir


@dataclass
class TensorSplit:
    """A split small enough to hold in memory: uint8 images (N, C, H, W) and int64 labels (N,).

    Loaders normalize and augment these in batches (on CPU or on the GPU), which
    is far cheaper than per-image transforms.
    """
    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"TensorSplit images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: Tensor) -> "TensorSplit":
        return TensorSplit(self.images[index], self.labels[index])


@dataclass
class Augment:
    """Training augmentation applied by the loaders: random crop after zero padding, horizontal flip."""
    crop_padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip


@dataclass
class DataBundle:
    """Train / val / test splits of one dataset plus what models need to know about it.

    A split is a ``TensorSplit`` (in-memory) or any ``torch.utils.data.Dataset``
    yielding ``(normalized float image, label)`` (e.g. an ImageFolder with transforms).
    """
    name: str
    train: TensorSplit | Dataset
    test: TensorSplit | Dataset
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: Sequence[float]
    std: Sequence[float]
    val: TensorSplit | Dataset | None = None
    augment: Augment = field(default_factory=Augment)
    class_names: Sequence[str] | None = None


def candidate_roots(data_root: str | os.PathLike | None) -> list[Path]:
    """Folders searched for datasets, in order: --data-root, $KDZOO_DATA, /usr/share/datasets (Debian's
    ``dataset-*`` packages), then where ``--download`` puts them by default (``~/.cache/kdzoo/data``)."""
    roots: list[Path] = []
    if data_root:
        roots.append(Path(data_root).expanduser())
    if os.environ.get("KDZOO_DATA"):
        roots.append(Path(os.environ["KDZOO_DATA"]).expanduser())
    roots.append(Path("/usr/share/datasets"))
    roots.append(user_data_dir())
    return roots


def find_dataset_dir(dirnames: Sequence[str], required: Sequence[str], data_root: str | os.PathLike | None,
                     layout: str, remedies: str = "") -> Path:
    """Return the first folder holding every ``required`` file (relative paths).

    Each root is tried as the dataset folder itself and with each of ``dirnames``
    appended. ``layout`` is shown to the user when nothing is found, with ``remedies`` (other ways to get
    the files) after it.
    """
    tried: list[Path] = []
    for root in candidate_roots(data_root):
        for folder in [root, *(root / d for d in dirnames)]:
            if folder in tried:
                continue
            tried.append(folder)
            if all((folder / f).exists() for f in required):
                return folder
    places = ", ".join(str(p) for p in candidate_roots(data_root))
    raise DataNotFoundError(f"{dirnames[0]} not found under {places}: put {layout} in "
                            f"<root>/{dirnames[0]}/ and pass --data-root <root> or set KDZOO_DATA=<root>"
                            + (f"; or {remedies}" if remedies else ""))


def split_train_val(train: TensorSplit, val_size: int | float, seed: int) -> tuple[TensorSplit, TensorSplit | None]:
    """Carve a validation split off ``train``: ``val_size`` images, or that fraction when < 1.

    The permutation depends only on ``seed`` and the split size, so every run
    (and every method in a comparison) sees the same split.
    """
    n = len(train)
    k = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if k <= 0:
        return train, None
    if k >= n:
        raise ConfigError(f"val_size {val_size} leaves no training images (train has {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return train.subset(perm[k:].sort().values), train.subset(perm[:k].sort().values)
