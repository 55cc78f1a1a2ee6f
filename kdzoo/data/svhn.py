"""SVHN cropped digits (Netzer et al. 2011) from the ``train_32x32.mat`` / ``test_32x32.mat`` files.

The MAT-files are decoded by kdzoo's own level-5 reader (no scipy needed).
Label 10 in the files stands for the digit 0 and becomes class 0, as in torchvision.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..registry import register_dataset
from ._matfile import MatFileError, load_mat
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val

MEAN, STD = (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_split(path: Path) -> TensorSplit:
    try:
        arrays = load_mat(path, {"X", "y"})
    except (MatFileError, OSError, ValueError) as exc:
        raise DataNotFoundError(f"cannot read {path}: {exc}") from exc
    if "X" not in arrays or "y" not in arrays:
        raise DataNotFoundError(f"{path} lacks the variables X and y (found {sorted(arrays)})")
    x, y = arrays["X"], arrays["y"].reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.size:
        raise DataNotFoundError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, N) with N = {y.size} labels")
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)).astype(np.uint8, copy=False))  # HWCN -> NCHW
    labels = y.astype(np.int64) % 10
    return TensorSplit(torch.from_numpy(images), torch.from_numpy(labels))


@register_dataset("svhn")
def svhn(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
         download: bool = False) -> DataBundle:
    """SVHN: 32x32 colour digit crops, 10 classes, 73,257 train / 26,032 test (the 'extra' set is not used).

    ``augment``: random crop after 4-pixel zero padding (no flip: digits are not mirror-symmetric).
    """
    layout = "train_32x32.mat and test_32x32.mat (the cropped-digits MAT-files)"
    try:
        folder = find_dataset_dir(["svhn", "SVHN"], list(FILES.values()), data_root, layout)
    except DataNotFoundError:
        if not download:
            raise
        # only for users with internet; never in tests. torchvision's SVHN class would need scipy to load.
        from torchvision.datasets import SVHN
        from torchvision.datasets.utils import download_url
        folder = Path(data_root or os.environ.get("KDZOO_DATA") or ".") / "svhn"
        for split in FILES:
            url, filename, md5 = SVHN.split_list[split]
            download_url(url, str(folder), filename, md5)
    train = read_split(folder / FILES["train"])
    test = read_split(folder / FILES["test"])
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name="svhn", train=train, val=val, test=test, num_classes=10, in_channels=3,
                      image_size=(32, 32), mean=MEAN, std=STD, class_names=tuple(str(i) for i in range(10)),
                      augment=Augment(crop_padding=4) if augment else Augment())


svhn.train_size = 73_257   # training images, for work estimates without loading the data
