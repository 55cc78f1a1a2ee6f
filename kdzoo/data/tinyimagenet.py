"""Tiny-ImageNet-200 (Stanford CS231N): 64x64 colour images, 200 classes, 100k train / 10k val.

The labelled validation set serves as the test split (the official test set
has no labels). Class indices follow the sorted WordNet ids, i.e. what
``torchvision.datasets.ImageFolder`` gives on ``train/``, so teachers trained
with ImageFolder-based code (e.g. mdistiller) keep their label order.

The JPEGs are decoded once into uint8 tensors; the result is cached next to the
data (``kdzoo-cache-*.pt``) when that folder is writable, so later runs load in seconds.
"""
from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataNotFoundError
from ..registry import register_dataset
from ..utils import atomic_write
from .base import Augment, DataBundle, TensorSplit, find_dataset_dir, split_train_val

MEAN, STD = (0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)  # as in mdistiller
SIZE = 64
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}
LAYOUT = ("the extracted tiny-imagenet-200.zip (train/<wnid>/images/*.JPEG, val/images/*.JPEG with "
          "val/val_annotations.txt, or val/<wnid>/ folders)")


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _wnids(root: Path) -> list[str]:
    if (root / "wnids.txt").is_file():
        ids = [line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip()]
    else:
        ids = [p.name for p in (root / "train").iterdir() if p.is_dir()]
    if not ids:
        raise DataNotFoundError(f"{root} has no classes: put {LAYOUT} there")
    return sorted(ids)


def _train_files(root: Path, index: dict[str, int]) -> list[tuple[Path, int]]:
    files = []
    for wnid, label in index.items():
        folder = root / "train" / wnid
        if not folder.is_dir():
            raise DataNotFoundError(f"{folder} is missing: put {LAYOUT} in {root}")
        files += [(p, label) for p in _images_under(folder)]
    return files


def _val_files(root: Path, index: dict[str, int]) -> list[tuple[Path, int]]:
    annotations = root / "val" / "val_annotations.txt"
    if annotations.is_file():  # the layout of the official zip: one folder of images plus a label file
        files = []
        for n, line in enumerate(annotations.read_text().splitlines(), start=1):
            fields = line.split("\t")
            if len(fields) < 2 or not line.strip():
                continue
            if fields[1] not in index:
                raise DataNotFoundError(f"{annotations}:{n} names class {fields[1]!r}, which train/ does not have")
            files.append((root / "val" / "images" / fields[0], index[fields[1]]))
        return files
    files = []  # val/ re-sorted into one folder per class (as ImageFolder-based code expects)
    for wnid, label in index.items():
        files += [(p, label) for p in _images_under(root / "val" / wnid)] if (root / "val" / wnid).is_dir() else []
    return files


def _decode(path: Path) -> np.ndarray:
    from PIL import Image  # only when JPEGs are decoded (the first load; later loads read the cache)
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (SIZE, SIZE):
                img = img.resize((SIZE, SIZE), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except OSError as exc:
        raise DataNotFoundError(f"cannot read image {path}: {exc}") from exc


def _load_split(root: Path, name: str, files: list[tuple[Path, int]], cache: bool) -> TensorSplit:
    if not files:
        raise DataNotFoundError(f"no {name} images found in {root}: put {LAYOUT} there")
    listing = "\n".join(f"{p.relative_to(root)}\t{y}" for p, y in files)
    cache_file = root / f"kdzoo-cache-{name}-{hashlib.sha1(listing.encode()).hexdigest()[:12]}.pt"
    if cache and cache_file.is_file():
        try:
            saved = torch.load(cache_file, map_location="cpu", weights_only=True)
            return TensorSplit(saved["images"], saved["labels"])
        except Exception:  # a damaged cache is rebuilt
            pass
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        images = np.stack(list(pool.map(_decode, [p for p, _ in files], chunksize=64)))
    split = TensorSplit(torch.from_numpy(images), torch.tensor([y for _, y in files], dtype=torch.long))
    if cache:
        try:
            atomic_write(cache_file, lambda f: torch.save({"images": split.images, "labels": split.labels}, f),
                         size=split.images.nbytes)
        except OSError:  # read-only data folder, or no room for it: no cache
            pass
    return split


def _class_names(root: Path, wnids: list[str]) -> list[str]:
    words = {}
    if (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


@register_dataset("tiny-imagenet")
def tiny_imagenet(data_root: str | None = None, *, val_size: int | float = 0, seed: int = 0, augment: bool = True,
                  download: bool = False, cache: bool = True) -> DataBundle:
    """Tiny-ImageNet-200: 64x64 colour images, 200 classes; the labelled val set is the test split.

    ``augment``: random crop after 8-pixel zero padding and horizontal flip.
    ``cache``: keep the decoded images next to the data for faster reloads.
    """
    dirs = ["tiny-imagenet-200", "tiny-imagenet", "tiny_imagenet"]
    try:
        root = find_dataset_dir(dirs, ["train", "val"], data_root, LAYOUT)
    except DataNotFoundError:
        if not download:
            raise
        from torchvision.datasets.utils import download_and_extract_archive  # never in tests
        base = Path(data_root or os.environ.get("KDZOO_DATA") or ".")
        download_and_extract_archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", str(base),
                                     md5="90528d7ca1a48142e341f4ef8d21d0de")
        root = base / "tiny-imagenet-200"
    wnids = _wnids(root)
    index = {w: i for i, w in enumerate(wnids)}
    train = _load_split(root, "train", _train_files(root, index), cache)
    test = _load_split(root, "val", _val_files(root, index), cache)
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name="tiny-imagenet", train=train, val=val, test=test, num_classes=len(wnids),
                      in_channels=3, image_size=(SIZE, SIZE), mean=MEAN, std=STD,
                      class_names=_class_names(root, wnids),
                      augment=Augment(crop_padding=8, flip=True) if augment else Augment())


tiny_imagenet.train_size = 100_000   # training images, for work estimates without loading the data
