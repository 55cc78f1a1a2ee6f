"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the "python version" archives that torchvision also uses.

The batches are Python pickles; they are read with an unpickler that only
accepts the numpy array constructors these files use, so a tampered file
cannot run code.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..registry import register_dataset
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val

# CIFAR-100 statistics as in RepDistiller / mdistiller; CIFAR-10 per-channel mean / std of the training set
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path) -> dict[str, Any]:
    """One pickled CIFAR batch as a dict with str keys (``data``, ``labels`` / ``fine_labels``, ...)."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataNotFoundError(f"{path} is not a CIFAR python batch ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataNotFoundError(f"{path} is not a CIFAR python batch (holds {type(obj).__name__})")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _split(folder: Path, files: list[str], label_key: str) -> TensorSplit:
    images, labels = [], []
    for name in files:
        batch = read_batch(folder / name)
        if "data" not in batch or label_key not in batch:
            raise DataNotFoundError(f"{folder / name} lacks 'data' or '{label_key}' (found {sorted(batch)})")
        data = np.asarray(batch["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))  # rows are 1024 red, 1024 green, 1024 blue values
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return TensorSplit(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def _names(folder: Path, meta: str, key: str) -> list[str] | None:
    try:
        return [str(n) for n in read_batch(folder / meta)[key]]
    except (OSError, DataNotFoundError, KeyError):
        return None


def _download(cls_name: str, data_root: str | None) -> str:
    import torchvision.datasets  # only for users with internet; never in tests
    root = data_root or os.environ.get("KDZOO_DATA") or "."
    getattr(torchvision.datasets, cls_name)(root, download=True)
    return root


def _load(name: str, dirname: str, train_files: list[str], test_files: list[str], meta: str, meta_key: str,
          label_key: str, num_classes: int, mean, std, layout: str, data_root, val_size, seed, augment,
          download) -> DataBundle:
    required = train_files + test_files
    try:
        folder = find_dataset_dir([dirname, f"{name}/{dirname}", name], required, data_root, layout)
    except DataNotFoundError:
        if not download:
            raise
        root = _download(name.upper(), data_root)
        folder = find_dataset_dir([dirname, f"{name}/{dirname}", name], required, root, layout)
    train = _split(folder, train_files, label_key)
    test = _split(folder, test_files, label_key)
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name=name, train=train, val=val, test=test, num_classes=num_classes, in_channels=3,
                      image_size=(32, 32), mean=mean, std=std, class_names=_names(folder, meta, meta_key),
                      augment=Augment(crop_padding=4, flip=True) if augment else Augment())


@register_dataset("cifar10")
def cifar10(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
            download: bool = False) -> DataBundle:
    """CIFAR-10: 32x32 colour images, 10 classes, 50k train / 10k test.

    ``augment``: random crop after 4-pixel zero padding and horizontal flip.
    """
    return _load("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                 "batches.meta", "label_names", "labels", 10, CIFAR10_MEAN, CIFAR10_STD,
                 "the python-version files data_batch_1..5, test_batch and batches.meta "
                 "(cifar-10-python.tar.gz)",
                 data_root, val_size, seed, augment, download)


cifar10.train_size = 50_000   # training images, for work estimates without loading the data


@register_dataset("cifar100")
def cifar100(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
             download: bool = False) -> DataBundle:
    """CIFAR-100: 32x32 colour images, 100 fine classes, 50k train / 10k test (the KD benchmark).

    ``augment``: random crop after 4-pixel zero padding and horizontal flip, as in RepDistiller.
    """
    return _load("cifar100", "cifar-100-python", ["train"], ["test"], "meta", "fine_label_names", "fine_labels",
                 100, CIFAR100_MEAN, CIFAR100_STD,
                 "the python-version files train, test and meta (cifar-100-python.tar.gz)",
                 data_root, val_size, seed, augment, download)


cifar100.train_size = 50_000   # training images, for work estimates without loading the data
