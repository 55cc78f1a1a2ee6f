"""Batch iterators shared by every run.

``TensorLoader`` serves in-memory ``TensorSplit``s: it shuffles, crops, flips and
normalizes whole batches with torch ops, on the CPU or on the GPU (the data
then lives in device memory). Every random choice comes from a generator
seeded by (seed, epoch), so an epoch's batches are the same whether a run is
resumed, trained alone or trained in a cohort.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .base import Augment, DataBundle, TensorSplit


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2 ** 63)


class TensorLoader:
    """Yields ``(x, y, index)``: normalized float images, int64 labels and dataset indices."""

    def __init__(self, split: TensorSplit, batch_size: int, *, mean: Sequence[float], std: Sequence[float],
                 shuffle: bool = False, augment: Augment | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", drop_last: bool = False, max_batches: int | None = None,
                 channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.augment = augment or Augment()
        self.seed, self.epoch = seed, 1
        self.max_batches = max_batches
        self.channels_last = channels_last
        c = self.images.shape[1]
        self.mean = torch.tensor(list(mean) * (c // len(mean)), device=self.device).view(1, c, 1, 1) * 255
        self.std = torch.tensor(list(std) * (c // len(std)), device=self.device).view(1, c, 1, 1) * 255

    @property
    def deterministic(self) -> bool:
        """True when an image looks the same every epoch (so teacher responses can be cached)."""
        return not self.augment.active

    @property
    def num_samples(self) -> int:
        return self.images.shape[0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.num_samples
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def _generator(self) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(epoch_seed(self.seed, self.epoch))
        return g

    def _crop_flip(self, x: Tensor, g: torch.Generator) -> Tensor:
        n, _, h, w = x.shape
        p = self.augment.crop_padding
        if p > 0:
            x = torch.nn.functional.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
            ox = torch.randint(0, 2 * p + 1, (n,), generator=g, device=x.device)
            rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            x = x[torch.arange(n, device=x.device)[:, None, None, None],
                  torch.arange(x.shape[1], device=x.device)[None, :, None, None], rows, cols]
        if self.augment.flip:
            flip = torch.rand(n, generator=g, device=x.device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x

    def full_pass(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every image once, in order, without augmentation: ``(x, index)``."""
        for start in range(0, self.num_samples, batch_size):
            idx = torch.arange(start, min(start + batch_size, self.num_samples), device=self.device)
            x = (self.images[idx].float() - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, idx

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        g = self._generator()
        n = self.num_samples
        order = torch.randperm(n, generator=g, device=self.device) if self.shuffle else torch.arange(n, device=self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.images[idx].float()
            if self.augment.active:
                x = self._crop_flip(x, g)
            x = (x - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx], idx


class _Indexed(Dataset):
    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, torch.as_tensor(y, dtype=torch.long), i


class DatasetLoader:
    """A DataLoader over a transform-based Dataset with the same interface as TensorLoader."""

    deterministic = False  # transform pipelines usually augment; never cache their teacher responses

    def __init__(self, ds: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, workers: int = 2,
                 device: str | torch.device = "cpu", drop_last: bool = False, max_batches: int | None = None,
                 channels_last: bool = False) -> None:
        self.ds, self.batch_size, self.shuffle, self.seed = ds, batch_size, shuffle, seed
        self.device = torch.device(device)
        self.epoch, self.max_batches, self.channels_last = 1, max_batches, channels_last
        self.loader_kwargs = dict(batch_size=batch_size, drop_last=drop_last, num_workers=workers,
                                  pin_memory=self.device.type == "cuda", persistent_workers=workers > 0)
        self._loader: DataLoader | None = None
        self._generator = torch.Generator()

    @property
    def num_samples(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self._get())
        return min(n, self.max_batches) if self.max_batches else n

    def _get(self) -> DataLoader:
        if self._loader is None:  # built once so persistent workers survive across epochs
            self._loader = DataLoader(_Indexed(self.ds), shuffle=self.shuffle, generator=self._generator,
                                      **self.loader_kwargs)
        return self._loader

    def __iter__(self):
        self._generator.manual_seed(epoch_seed(self.seed, self.epoch))
        for b, (x, y, idx) in enumerate(self._get()):
            if self.max_batches and b >= self.max_batches:
                break
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True), idx.to(self.device, non_blocking=True)


def make_loader(bundle: DataBundle, split: str, batch_size: int, *, train: bool, seed: int = 0,
                device: str | torch.device = "cpu", max_batches: int | None = None, workers: int = 2,
                channels_last: bool = False):
    """The loader for ``bundle.<split>``: shuffled and augmented when ``train``."""
    data = getattr(bundle, split)
    if data is None:
        raise ValueError(f"dataset {bundle.name} has no {split} split")
    if isinstance(data, TensorSplit):
        return TensorLoader(data, batch_size, mean=bundle.mean, std=bundle.std, shuffle=train,
                            augment=bundle.augment if train else None, seed=seed, device=device,
                            max_batches=max_batches, channels_last=channels_last)
    return DatasetLoader(data, batch_size, shuffle=train, seed=seed, device=device, max_batches=max_batches,
                         workers=workers, channels_last=channels_last)
