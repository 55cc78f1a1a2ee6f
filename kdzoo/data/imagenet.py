"""ImageNet-1k (ILSVRC 2012) from an ImageFolder tree: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``.

Too big for memory, so the splits are ``torchvision.datasets.ImageFolder``s
with the standard transforms: RandomResizedCrop(224) + horizontal flip for
training, Resize(256) + CenterCrop(224) for evaluation, then normalization.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch.utils.data import Subset

from ..errors import DataNotFoundError
from ..registry import register_dataset
from .base import DataBundle, find_dataset_dir

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYOUT = ("train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (the validation images sorted into one folder per class, "
          "e.g. with the usual valprep.sh)")


def transforms_for(train: bool, size: int = 224, resize: int = 256):
    from torchvision import transforms as T  # torchvision takes seconds to import: only for ImageNet
    if train:
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(resize), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(MEAN, STD)])


def _folder(path: Path, transform):
    from torchvision.datasets import ImageFolder  # see transforms_for
    try:
        return ImageFolder(str(path), transform=transform)
    except (FileNotFoundError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataNotFoundError(f"{path}: {first}; expected {LAYOUT}") from exc


def _val_indices(n: int, val_size: int | float, seed: int) -> tuple[list[int], list[int]]:
    """Same rule as ``split_train_val``: a seeded permutation, the first ``k`` indices held out."""
    k = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if k <= 0:
        return list(range(n)), []
    if k >= n:
        raise ValueError(f"val_size {val_size} leaves no training images (train has {n})")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[k:].sort().values.tolist(), perm[:k].sort().values.tolist()


@register_dataset("imagenet")
def imagenet(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
             download: bool = False) -> DataBundle:
    """ImageNet-1k at 224x224: 1.28M train / 50k val (the test split) images, 1000 classes.

    ``augment``: RandomResizedCrop(224) and horizontal flip (otherwise the evaluation
    transform). ``val_size`` holds out training images, shown with the evaluation transform.
    ImageNet cannot be downloaded automatically (its licence needs a login).
    """
    try:
        root = find_dataset_dir(["imagenet", "ILSVRC2012", "imagenet-1k"], ["train", "val"], data_root, LAYOUT)
    except DataNotFoundError as exc:
        if download:
            raise DataNotFoundError(f"{exc} (ImageNet needs a manual download from image-net.org)") from None
        raise
    train_full = _folder(root / "train", transforms_for(augment))
    test = _folder(root / "val", transforms_for(False))
    if test.classes != train_full.classes:
        raise DataNotFoundError(f"{root}/val has {len(test.classes)} class folders that differ from the "
                                f"{len(train_full.classes)} in train/; expected {LAYOUT}")
    train_idx, val_idx = _val_indices(len(train_full), val_size, seed)
    train, val = train_full, None
    if val_idx:
        from torchvision.datasets.vision import StandardTransform  # see transforms_for
        plain = copy.copy(train_full)  # same file list (no second scan of train/), evaluation transform
        plain.transform = transforms_for(False)
        plain.transforms = StandardTransform(plain.transform, plain.target_transform)
        train, val = Subset(train_full, train_idx), Subset(plain, val_idx)
    return DataBundle(name="imagenet", train=train, val=val, test=test, num_classes=len(train_full.classes),
                      in_channels=3, image_size=(224, 224), mean=MEAN, std=STD, class_names=train_full.classes)


imagenet.train_size = 1_281_167   # training images, for work estimates without loading the data
