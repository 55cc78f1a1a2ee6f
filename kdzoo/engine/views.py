"""The strongly augmented second view that losses declaring ``needs = {"strong_view"}`` receive.

MLKD and CRLD train on two views of every image: the run's weak augmentation
(crop/flip, what the loader yields) and a strong one, RandAugment(2, 10) on top
of it, as in the authors' ``MultipleApply([weak, strong])`` CIFAR pipelines.
Here the strong view is built from the weak batch itself: the normalized batch
is mapped back to its exact uint8 pixels, each image goes through torchvision's
``v2.RandAugment(num_ops=2, magnitude=10)``, and the result is normalized again.

Determinism: the random choices of batch ``step`` of ``epoch`` come from a
generator seeded by (data seed, epoch, step) inside ``torch.random.fork_rng``,
so the global RNG of the members is untouched, members that do not need the
view train bit-identically, and a cohort and a solo run see the same views.
The view is made once per batch and the teacher answers it once; its queries
are charged to the members that use it. It is never cached: it changes
every epoch. (Under torchrun each rank augments its own slice with the same
seed, so the views differ from a one-process run's.)
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from ..errors import ConfigError
from ..losses.base import needs_of
from ..teachers import Teacher

STRONG_VIEW = "strong_view"


def view_seed(seed: int, epoch: int, step: int) -> int:
    return (int(seed) * 998_244_353 + int(epoch) * 1_000_003 + int(step) * 7_919 + 17) % (2 ** 63)


def pixel_scale(loader: Any, bundle: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std in 0..255 units, shaped (1, C, 1, 1), of the loader's normalization."""
    if hasattr(loader, "mean") and hasattr(loader, "std"):
        return loader.mean.to(device), loader.std.to(device)
    if bundle is not None and getattr(bundle, "mean", None) is not None:
        mean = torch.tensor(list(bundle.mean), device=device).view(1, -1, 1, 1) * 255
        return mean, torch.tensor(list(bundle.std), device=device).view(1, -1, 1, 1) * 255
    raise ConfigError("a loss needs a strong view, but the training data's normalization is unknown; "
                      "pass the dataset bundle to the Trainer")


def randaugment_batch(images: Tensor, seed: int, num_ops: int = 2, magnitude: int = 10) -> Tensor:
    """RandAugment each uint8 image of (N, C, H, W) ``images``, reproducibly from ``seed``."""
    augment = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
    with torch.random.fork_rng(devices=[]):  # torchvision draws from the global CPU generator
        torch.manual_seed(seed)
        return torch.stack([augment(img) for img in images])


def strong_view(x: Tensor, mean: Tensor, std: Tensor, seed: int) -> Tensor:
    """The strong view of normalized batch ``x``, normalized the same way."""
    pixels = (x.float() * std + mean).round_().clamp_(0, 255).to(torch.uint8)
    out = randaugment_batch(pixels.contiguous(), seed).to(torch.float32).sub_(mean).div_(std)
    # keep the loader's memory format (channels_last runs)
    return out if x.is_contiguous() else out.contiguous(memory_format=torch.channels_last)


class StrongViews:
    """Makes the shared strong view of each batch and the teacher's answer to it."""

    def __init__(self, members: Sequence[Any], loader: Any, bundle: Any, teacher: Teacher | None,
                 device: torch.device, amp_ctx: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.users = [m for m in members if STRONG_VIEW in needs_of(m.loss)]
        self.seed = int(getattr(loader, "seed", 0))
        self.mean, self.std = pixel_scale(loader, bundle, device)
        self.teacher, self.amp_ctx = teacher, amp_ctx

    @classmethod
    def build(cls, members: Sequence[Any], loader: Any, bundle: Any, teacher: Teacher | None,
              device: torch.device, amp_ctx: Callable[[], Any] = contextlib.nullcontext) -> "StrongViews | None":
        """None when no member needs a strong view (then nothing about the run changes)."""
        if not any(STRONG_VIEW in needs_of(m.loss) for m in members):
            return None
        return cls(members, loader, bundle, teacher, device, amp_ctx)

    def batch(self, x: Tensor, epoch: int, step: int) -> dict[str, Any]:
        """``{"x": strong view, "teacher": teacher's response or None}`` for batch ``step`` of ``epoch``."""
        xs = strong_view(x, self.mean, self.std, view_seed(self.seed, epoch, step))
        t = None
        if self.teacher is not None:
            with self.amp_ctx():
                t = self.teacher(xs).float()
            for m in self.users:
                if m.active and m.done_epochs < epoch:
                    m.queries += x.shape[0]
        return {"x": xs, "teacher": t}

    @staticmethod
    def loss_inputs(m: Any, shared: dict[str, Any] | None) -> dict[str, Tensor]:
        """The keyword arguments member ``m``'s loss gets from the shared view (none if it does not need one)."""
        if not shared or STRONG_VIEW not in needs_of(m.loss):
            return {}
        return {"student_logits_strong": m.forward(shared["x"]).float(), "teacher_logits_strong": shared["teacher"]}
