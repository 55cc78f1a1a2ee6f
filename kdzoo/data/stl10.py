"""STL-10 (Coates et al. 2011), the labelled part, from the ``stl10_binary`` files.

Images are stored as raw uint8 bytes, each 3 x 96 x 96 with every colour plane
in column-major order; labels are bytes 1..10 (class 0..9 here).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..registry import register_dataset
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val

MEAN, STD = (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)
SIZE = 96
FILES = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")


def read_split(folder: Path, split: str) -> TensorSplit:
    pixels = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
    per_image = 3 * SIZE * SIZE
    if pixels.size % per_image or pixels.size // per_image != labels.size:
        raise DataNotFoundError(f"{folder / f'{split}_X.bin'} holds {pixels.size} bytes, expected "
                                f"{labels.size} images of 3x{SIZE}x{SIZE} to match {split}_y.bin")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataNotFoundError(f"{folder / f'{split}_y.bin'} has labels outside 1..10")
    images = pixels.reshape(-1, 3, SIZE, SIZE).transpose(0, 1, 3, 2)  # planes are stored column by column
    return TensorSplit(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels))


def _class_names(folder: Path) -> tuple[str, ...]:
    path = folder / "class_names.txt"
    if path.is_file():
        names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
        if len(names) == 10:
            return names
    return CLASSES


@register_dataset("stl10")
def stl10(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
          download: bool = False) -> DataBundle:
    """STL-10 labelled images: 96x96 colour, 10 classes, 5,000 train / 8,000 test (unlabelled set unused).

    ``augment``: random crop after 12-pixel zero padding and horizontal flip.
    """
    layout = "train_X.bin, train_y.bin, test_X.bin and test_y.bin from stl10_binary.tar.gz"
    dirs = ["stl10_binary", "stl10/stl10_binary", "stl10"]
    try:
        folder = find_dataset_dir(dirs, FILES, data_root, layout)
    except DataNotFoundError:
        if not download:
            raise
        from torchvision.datasets import STL10  # only for users with internet; never in tests
        STL10(str(Path(data_root or os.environ.get("KDZOO_DATA") or ".")), split="test", download=True)
        folder = find_dataset_dir(dirs, FILES, data_root or os.environ.get("KDZOO_DATA") or ".", layout)
    train = read_split(folder, "train")
    test = read_split(folder, "test")
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name="stl10", train=train, val=val, test=test, num_classes=10, in_channels=3,
                      image_size=(SIZE, SIZE), mean=MEAN, std=STD, class_names=_class_names(folder),
                      augment=Augment(crop_padding=12, flip=True) if augment else Augment())


stl10.train_size = 5_000   # training images, for work estimates without loading the data
