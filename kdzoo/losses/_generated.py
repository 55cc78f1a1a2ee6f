"""The student's data when it learns from a frozen generator (mekd and its generator baselines):
batches of G(z), normalized as the models expect, in one of two student phases.

- ``GeneratedLoader`` (``pool: 0``, the authors' schedule): fresh z every step, so the teacher is
  asked about every batch (one query per image and step).
- ``PooledLoader`` (``pool: N``): N images generated once, labelled once by the teacher (the
  trainer's teacher table: ``deterministic`` and ``full_pass``), then trained on for every epoch in
  a seeded shuffled order, like the real-image baselines' N images. The pool is the first N images
  the per-step phase would draw in epoch 1.

Both draw z from a generator seeded by the run's seed, so two losses with the same seed and generator
see the same images. Ma et al., CVPR 2024, arXiv 2205.10490; the loss is in mekd.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch
from torch import Tensor

if TYPE_CHECKING:  # only for annotations: mekd.py imports this module
    from .mekd import MEKD


def _stream_seed(seed: int, epoch: int, offset: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + offset) % 2 ** 63


class GeneratedLoader:
    """(G(z) normalized for the models, dummy labels, index), fresh z per step, seeded by (seed, epoch)."""
    deterministic = False

    def __init__(self, loss: "MEKD", batch_size: int, steps: int, seed: int, channels_last: bool) -> None:
        self.loss, self.bs, self.steps, self.seed, self.epoch, self.cl = loss, batch_size, steps, seed, 1, channels_last
        self.num_samples = steps * batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        dev, bs = self.loss._norm[0].device, self.bs
        g = torch.Generator(device=dev).manual_seed(_stream_seed(self.seed, self.epoch, 1))
        for b in range(self.steps):
            with torch.no_grad():
                x = self.loss.to_model_input(self.loss.generate(torch.randn(bs, self.loss._latent, generator=g,
                                                                            device=dev)))
            # the folded generator computes in channels_last: hand the student the layout it asked for
            x = x.contiguous(memory_format=torch.channels_last if self.cl else torch.contiguous_format)
            yield x, torch.zeros(bs, dtype=torch.long, device=dev), torch.arange(b * bs, (b + 1) * bs, device=dev)


class PooledLoader:
    """A fixed pool of N generated images, (x, dummy labels, index) in a shuffled order per epoch;
    ``max_steps`` caps the batches per epoch (the run's ``steps_per_epoch``)."""
    deterministic = True              # the same images every epoch: the trainer asks the teacher once

    def __init__(self, loss: "MEKD", pool: int, batch_size: int, seed: int, channels_last: bool,
                 max_steps: int | None = None) -> None:
        self.bs, self.seed, self.epoch, self.cl, self.max_steps = batch_size, seed, 1, channels_last, max_steps
        first = GeneratedLoader(loss, batch_size, -(-pool // batch_size), seed, channels_last=False)
        self.images = torch.cat([x for x, _, _ in first])[:pool]
        self.num_samples = pool

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        batches = -(-self.num_samples // self.bs)
        return min(batches, self.max_steps) if self.max_steps else batches

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last if self.cl else torch.contiguous_format)

    def full_pass(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Every image once, in order: ``(x, index)`` (the teacher's labelling pass)."""
        for start in range(0, self.num_samples, batch_size):
            stop = min(start + batch_size, self.num_samples)
            yield self._layout(self.images[start:stop]), torch.arange(start, stop, device=self.images.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        g = torch.Generator().manual_seed(_stream_seed(self.seed, self.epoch, 2))
        order = torch.randperm(self.num_samples, generator=g).to(self.images.device)
        for b in range(len(self)):
            idx = order[b * self.bs:(b + 1) * self.bs]
            yield (self._layout(self.images.index_select(0, idx)),
                   torch.zeros(len(idx), dtype=torch.long, device=idx.device), idx)
