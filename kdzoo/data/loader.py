"""Batch iterators shared by every run.

``TensorLoader`` serves in-memory ``TensorSplit``s: it shuffles, crops, flips and
normalizes whole batches with torch ops. On a GPU the uint8 images live in
device memory when they fit (Fashion-MNIST, CIFAR, SVHN, ...), so a batch never
crosses the PCIe bus; otherwise they stay in host memory and each cropped
uint8 batch is sent through pinned memory without blocking.

Determinism: every random choice of an epoch (the order, each image's crop
offsets and flip) is drawn up front on the CPU from a generator seeded by
(seed, epoch) — see ``epoch_plan`` — and only then moved to the device. The
CPU and GPU paths therefore run the same algorithm on the same random numbers
and give the same batches, and an epoch's batches are the same whether a run
is resumed, trained alone or trained in a cohort. (A CUDA ``torch.Generator``
would give a different stream from a CPU one with the same seed, and drawing
small tensors on the host per batch would cost a blocking copy per batch.)

``DatasetLoader`` wraps transform-based datasets (image folders) in a
``DataLoader`` with persistent workers and pinned memory. Its sampler is
seeded per (seed, epoch) and every sample's transforms run under an RNG seeded
by (seed, epoch, index), so the augmentation of an image does not depend on the
number of workers, on which worker loads it, or on whether the run was resumed.
"""
from __future__ import annotations

import contextlib
import random
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from .base import Augment, DataBundle, TensorSplit

# A dataset may live on the GPU when it takes at most this fraction of the free device memory.
GPU_RESIDENT_FRACTION = 0.5


def epoch_seed(seed: int, epoch: int) -> int:
    return (int(seed) * 1_000_003 + int(epoch) * 7919) % (2 ** 63)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """``[lo, hi)`` of the ``rank``-th of ``world`` contiguous, near-equal slices of ``n`` items."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def num_batches(n: int, batch_size: int, drop_last: bool, world_size: int = 1) -> int:
    """Global batches per epoch; with several ranks, a last batch too small to give each an image is dropped."""
    if drop_last:
        return n // batch_size
    batches = -(-n // batch_size)
    if world_size > 1 and 0 < n % batch_size < world_size:
        batches -= 1
    return batches


def sample_seed(epoch_seed_: int, index: int) -> int:
    """Seed of one sample's transforms in one epoch."""
    return (int(epoch_seed_) * 6_364_136_223_846_793_005 + int(index) * 1_442_695_040_888_963_407 + 1) % (2 ** 63)


@dataclass
class EpochPlan:
    """The random choices of one epoch, drawn on the CPU, one entry per position in the epoch."""
    order: Tensor | None   # (N,) permutation of the dataset; None: natural order
    dy: Tensor | None      # (N,) vertical crop offsets in [0, 2 * padding]; None: no crop
    dx: Tensor | None      # (N,) horizontal crop offsets
    flip: Tensor | None    # (N,) bool, flip horizontally; None: no flip

    def to(self, device: torch.device) -> "EpochPlan":
        def move(t: Tensor | None) -> Tensor | None:
            if t is None or device.type == "cpu":
                return t
            return t.pin_memory().to(device, non_blocking=True)
        return EpochPlan(move(self.order), move(self.dy), move(self.dx), move(self.flip))


def epoch_plan(n: int, seed: int, epoch: int, *, shuffle: bool, augment: Augment) -> EpochPlan:
    """Order, crop offsets and flips of epoch ``epoch``; always drawn with a CPU generator."""
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = torch.randperm(n, generator=g) if shuffle else None
    dy = dx = flip = None
    p = augment.crop_padding
    if p > 0:
        dy = torch.randint(0, 2 * p + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=g)
    if augment.flip:
        flip = torch.rand(n, generator=g) < 0.5
    return EpochPlan(order, dy, dx, flip)


def crop_flip(images: Tensor, index: Tensor, dy: Tensor | None, dx: Tensor | None, flip: Tensor | None,
              padding: int) -> Tensor:
    """``images[index]``, each randomly cropped and flipped.

    Zero-pads each image by ``padding`` on every side, takes the window at offset
    (dy, dx) of the original size, then flips it horizontally where ``flip``: the
    selected images are padded as a batch and the windows gathered with one
    flat ``index_select`` (several times faster on a CPU than advanced indexing,
    one kernel on a GPU). Works on any device, on the dtype of ``images`` (uint8).
    """
    x = images.index_select(0, index)
    n, c, h, w = x.shape
    p = padding if dy is not None else 0
    if p > 0:
        x = torch.nn.functional.pad(x, (p, p, p, p))
    dev = x.device
    height, width = h + 2 * p, w + 2 * p
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if p > 0:
        rows = rows + dy[:, None]
        cols = cols + dx[:, None]
    if flip is not None:
        cols = torch.where(flip[:, None], cols.flip(1), cols)
    flat = ((torch.arange(n, device=dev) * (c * height * width))[:, None, None, None]
            + (torch.arange(c, device=dev) * (height * width))[None, :, None, None]
            + (rows * width)[:, None, :, None] + cols[:, None, None, :])
    return x.reshape(-1).index_select(0, flat.reshape(-1)).view(n, c, h, w)


def _storage_for(images: Tensor, device: torch.device, storage: str | torch.device | None) -> torch.device:
    """Where a split's uint8 images live: on the GPU when they fit in device memory, else in host memory."""
    if storage is not None:
        return torch.device(storage)
    if device.type != "cuda":
        return device
    free, _total = torch.cuda.mem_get_info(device)
    return device if images.numel() * images.element_size() <= GPU_RESIDENT_FRACTION * free else torch.device("cpu")


class TensorLoader:
    """Yields ``(x, y, index)``: normalized float images, int64 labels and dataset indices, all on ``device``.

    ``storage`` overrides where the uint8 images are kept (default: on ``device``
    when they fit, see ``GPU_RESIDENT_FRACTION``).

    ``world_size``/``rank`` (distributed training): every rank walks the same
    global batches of ``batch_size`` and yields only its contiguous slice
    (``shard_bounds``) of each, with that slice's share of the epoch plan, so
    the ranks together see exactly the batches of a one-process run.
    """

    def __init__(self, split: TensorSplit, batch_size: int, *, mean: Sequence[float], std: Sequence[float],
                 shuffle: bool = False, augment: Augment | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", drop_last: bool = False, max_batches: int | None = None,
                 channels_last: bool = False, storage: str | torch.device | None = None, world_size: int = 1,
                 rank: int = 0) -> None:
        self.world_size, self.rank = int(world_size), int(rank)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.storage = _storage_for(split.images, self.device, storage)
        self.images = split.images.to(self.storage)
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
        batches = num_batches(self.num_samples, self.batch_size, self.drop_last, self.world_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The CPU-drawn random choices of ``epoch`` (default: the current one)."""
        return epoch_plan(self.num_samples, self.seed, self.epoch if epoch is None else epoch,
                          shuffle=self.shuffle, augment=self.augment)

    def _finish(self, x: Tensor) -> Tensor:
        """uint8 batch on the storage device -> normalized float batch on the output device."""
        if x.device != self.device:
            x = x.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.to(torch.float32, copy=True).sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def redraw(self, index: Tensor, seed: int) -> Tensor:
        """Images ``index`` again (normalized) with crop and flip drawn afresh from ``seed``: an independent view."""
        plan = epoch_plan(index.shape[0], seed, 0, shuffle=False, augment=self.augment).to(self.storage)
        return self._finish(crop_flip(self.images, index.to(self.storage), plan.dy, plan.dx, plan.flip,
                                      self.augment.crop_padding))

    def full_pass(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every image once, in order, without augmentation: ``(x, index)``."""
        for start in range(0, self.num_samples, batch_size):
            stop = min(start + batch_size, self.num_samples)
            yield self._finish(self.images[start:stop]), torch.arange(start, stop, device=self.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        cpu_plan = self.plan()
        on_device = cpu_plan.to(self.device)
        plan = on_device if self.storage == self.device else cpu_plan.to(self.storage)
        order = on_device.order  # indices for the labels (and the caller) on the output device
        aug, p = self.augment.active, self.augment.crop_padding
        bs, n = self.batch_size, self.num_samples
        for b in range(len(self)):
            start, stop = b * bs, min((b + 1) * bs, n)
            if self.world_size > 1:  # this rank's slice of the global batch
                lo, hi = shard_bounds(stop - start, self.rank, self.world_size)
                start, stop = start + lo, start + hi
            if order is None:
                idx = torch.arange(start, stop, device=self.device)
                idx_s = idx if self.storage == self.device else torch.arange(start, stop, device=self.storage)
            else:
                idx, idx_s = order[start:stop], plan.order[start:stop]
            if aug:
                sl = slice(start, stop)
                x = crop_flip(self.images, idx_s, plan.dy[sl] if plan.dy is not None else None,
                              plan.dx[sl] if plan.dx is not None else None,
                              plan.flip[sl] if plan.flip is not None else None, p)
            elif order is None:
                x = self.images[start:stop]
            else:
                x = self.images.index_select(0, idx_s)
            yield self._finish(x), self.labels.index_select(0, idx), idx


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a sample's transforms under RNGs seeded by ``seed``.

    In a worker process the RNGs are simply reseeded; in the main process
    (``workers=0``) their states are restored afterwards, so loading data never
    disturbs a run's own random stream.
    """
    np = sys.modules.get("numpy")
    in_worker = get_worker_info() is not None
    saved = None if in_worker else (torch.default_generator.get_state(), random.getstate(),
                                    np.random.get_state() if np is not None else None)
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    if np is not None:
        np.random.seed(seed % (2 ** 32))
    try:
        yield
    finally:
        if saved is not None:
            torch.default_generator.set_state(saved[0])
            random.setstate(saved[1])
            if np is not None and saved[2] is not None:
                np.random.set_state(saved[2])


class _Indexed(Dataset):
    """Yields ``(x, y, index)``; keys are ``(index, epoch seed)`` pairs from ``_EpochSampler``."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, key):
        i, eseed = key if isinstance(key, tuple) else (key, None)
        if eseed is None:
            x, y = self.ds[i]
        else:
            with _seeded(sample_seed(eseed, i)):
                x, y = self.ds[i]
        return x, torch.as_tensor(y, dtype=torch.long), i


class _EpochSampler(Sampler):
    """The epoch's order (same permutation as TensorLoader's), each index paired with the epoch's seed."""

    def __init__(self, n: int, shuffle: bool, seed: int) -> None:
        self.n, self.shuffle, self.seed, self.epoch = n, shuffle, seed, 1

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        s = epoch_seed(self.seed, self.epoch)
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(s)).tolist()
        else:
            order = range(self.n)
        return ((i, s) for i in order)


class _ShardBatches(Sampler):
    """Distributed training: this rank's contiguous slice of each global batch of the epoch's order."""

    def __init__(self, sampler: _EpochSampler, batch_size: int, drop_last: bool, world_size: int, rank: int) -> None:
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.world_size, self.rank = world_size, rank

    def __len__(self) -> int:
        return num_batches(len(self.sampler), self.batch_size, self.drop_last, self.world_size)

    def __iter__(self):
        keys = list(self.sampler)
        for b in range(len(self)):
            batch = keys[b * self.batch_size:(b + 1) * self.batch_size]
            lo, hi = shard_bounds(len(batch), self.rank, self.world_size)
            yield batch[lo:hi]


class DatasetLoader:
    """A DataLoader over a transform-based Dataset with the same interface as TensorLoader.

    ``world_size``/``rank``: each rank loads only its slice of every global batch (see TensorLoader).
    """

    deterministic = False  # transform pipelines usually augment; never cache their teacher responses

    def __init__(self, ds: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0, workers: int = 2,
                 device: str | torch.device = "cpu", drop_last: bool = False, max_batches: int | None = None,
                 channels_last: bool = False, world_size: int = 1, rank: int = 0) -> None:
        self.ds, self.batch_size, self.shuffle, self.seed = ds, batch_size, shuffle, seed
        self.world_size, self.rank, self.drop_last = int(world_size), int(rank), drop_last
        self.device = torch.device(device)
        self.epoch, self.max_batches, self.channels_last = 1, max_batches, channels_last
        self.sampler = _EpochSampler(len(ds), shuffle, seed)  # type: ignore[arg-type]
        self.loader_kwargs = dict(batch_size=batch_size, drop_last=drop_last, num_workers=workers,
                                  pin_memory=self.device.type == "cuda", persistent_workers=workers > 0)
        self._loader: DataLoader | None = None
        # DataLoader draws its workers' base seed from this generator, never from the global RNG
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
        if self._loader is None and self.world_size > 1:
            kw = {k: v for k, v in self.loader_kwargs.items() if k not in ("batch_size", "drop_last")}
            shards = _ShardBatches(self.sampler, self.batch_size, self.drop_last, self.world_size, self.rank)
            self._loader = DataLoader(_Indexed(self.ds), batch_sampler=shards, generator=self._generator, **kw)
        if self._loader is None:  # built once so persistent workers survive across epochs
            self._loader = DataLoader(_Indexed(self.ds), sampler=self.sampler, generator=self._generator,
                                      **self.loader_kwargs)
        return self._loader

    def redraw(self, index: Tensor, seed: int) -> Tensor:
        """Images ``index`` again through the transforms, seeded per image from ``seed`` (in this process)."""
        return torch.stack([_Indexed(self.ds)[(i, seed)][0] for i in index.tolist()]).to(self.device)

    def __iter__(self):
        self.sampler.epoch = self.epoch
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
                channels_last: bool = False, world_size: int = 1, rank: int = 0):
    """The loader for ``bundle.<split>``: shuffled and augmented when ``train``.

    ``world_size``/``rank``: yield only this rank's slice of each global batch of ``batch_size``.
    """
    data = getattr(bundle, split)
    if data is None:
        raise ValueError(f"dataset {bundle.name} has no {split} split")
    if isinstance(data, TensorSplit):
        return TensorLoader(data, batch_size, mean=bundle.mean, std=bundle.std, shuffle=train,
                            augment=bundle.augment if train else None, seed=seed, device=device,
                            max_batches=max_batches, channels_last=channels_last, world_size=world_size, rank=rank)
    return DatasetLoader(data, batch_size, shuffle=train, seed=seed, device=device, max_batches=max_batches,
                         workers=workers, channels_last=channels_last, world_size=world_size, rank=rank)
