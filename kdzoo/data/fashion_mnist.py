"""Fashion-MNIST (Xiao et al. 2017, MIT licence) from the four standard IDX ``.gz`` files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..registry import register_dataset
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val
from .download import APT_HINT, download_fashion_mnist

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = (0.2860,), (0.3530,)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): big-endian magic, dims, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataNotFoundError(f"{path} is not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


@register_dataset("fashion-mnist")
def fashion_mnist(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0,
                  augment: bool = False, download: bool = False) -> DataBundle:
    """Fashion-MNIST 28x28 grey images, 10 classes, 60k train / 10k test.

    ``augment`` adds random crop with 2-pixel padding and horizontal flip.
    """
    layout = "the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...)"
    try:
        folder = find_dataset_dir(["fashion-mnist", "FashionMNIST/raw"], list(FILES.values()), data_root, layout,
                                  remedies=f"pass --download (needs a network), or {APT_HINT}")
    except DataNotFoundError:
        if not download:
            raise
        folder = download_fashion_mnist(data_root, list(FILES.values()))
    arrays = {k: read_idx(folder / f) for k, f in FILES.items()}
    train = TensorSplit(torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1),
                        torch.from_numpy(arrays["train_labels"].astype(np.int64)))
    test = TensorSplit(torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
                       torch.from_numpy(arrays["test_labels"].astype(np.int64)))
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name="fashion-mnist", train=train, val=val, test=test, num_classes=10, in_channels=1,
                      image_size=(28, 28), mean=MEAN, std=STD, class_names=CLASSES,
                      augment=Augment(crop_padding=2, flip=True) if augment else Augment())


fashion_mnist.train_size = 60_000   # training images, for work estimates without loading the data
