"""The strongly augmented second view that losses declaring ``needs = {"strong_view"}`` receive.

MLKD and CRLD train on two views of every image: the run's weak augmentation
(crop/flip, what the loader yields) and a strong one. A loss names how its
strong view is made in its ``strong_view`` attribute (``losses.base.STRONG_VIEWS``):

- ``"authors"`` (their ``MultipleApply([weak, strong])`` pipelines): the images
  again, with the data's own crop and flip drawn independently of the weak
  view's (``loader.redraw``), then the authors' RandAugment: two random PIL
  operations at random magnitudes and a Cutout (``kdzoo.data.randaugment``);
- ``"weak_randaugment"`` (kdzoo's earlier view): torchvision's
  ``v2.RandAugment(num_ops=2, magnitude=10)`` on the weak view's own pixels.

Either way the normalized images are mapped back to their exact uint8 pixels,
augmented and normalized again. A loader without ``redraw`` gives the weak
batch as the start of the ``"authors"`` view.

Determinism: the random choices of batch ``step`` of ``epoch`` come from
generators seeded by (data seed, epoch, step), never from the global RNG, so
members that do not need the view train bit-identically and a cohort and a
solo run see the same views. Each kind of view is made once per batch and the
teacher answers it once; its queries are charged to the members that use it.
It is never cached: it changes every epoch. (Under torchrun each rank augments
its own slice with the same seed, so the views differ from a one-process run's.)
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from ..data.randaugment import augment_batch
from ..errors import ConfigError
from ..losses.base import STRONG_VIEWS, needs_of, strong_view_of
from ..teachers import Teacher

STRONG_VIEW = "strong_view"


def view_seed(seed: int, epoch: int, step: int) -> int:
    return (int(seed) * 998_244_353 + int(epoch) * 1_000_003 + int(step) * 7_919 + 17) % (2 ** 63)


def augment_seed(seed: int) -> int:
    """The seed of the RandAugment draws of a view, apart from the one of its crop and flip."""
    return (int(seed) * 6_364_136_223_846_793_005 + 1_442_695_040_888_963_407) % (2 ** 63)


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
    """torchvision's RandAugment on each uint8 image of (N, C, H, W) ``images``, reproducibly from ``seed``."""
    augment = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
    with torch.random.fork_rng(devices=[]):  # torchvision draws from the global CPU generator
        torch.manual_seed(seed)
        return torch.stack([augment(img) for img in images])


def _pixels(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (x.float() * std + mean).round_().clamp_(0, 255).to(torch.uint8)


def _normalized(pixels: Tensor, like: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    out = pixels.to(like.device).to(torch.float32).sub_(mean).div_(std)
    # keep the loader's memory format (channels_last runs)
    return out if like.is_contiguous() else out.contiguous(memory_format=torch.channels_last)


def strong_view(x: Tensor, mean: Tensor, std: Tensor, seed: int) -> Tensor:
    """The ``"weak_randaugment"`` view of normalized batch ``x``, normalized the same way."""
    return _normalized(randaugment_batch(_pixels(x, mean, std).contiguous(), seed), x, mean, std)


def authors_view(x: Tensor, start: Tensor, mean: Tensor, std: Tensor, seed: int) -> Tensor:
    """The ``"authors"`` view: their RandAugment of ``start`` (normalized images, e.g. ``loader.redraw``),
    normalized and laid out like the weak batch ``x``."""
    return _normalized(augment_batch(_pixels(start, mean, std).cpu(), augment_seed(seed)), x, mean, std)


class StrongViews:
    """Makes the shared strong views of each batch (one per kind in use) and the teacher's answers to them."""

    def __init__(self, members: Sequence[Any], loader: Any, bundle: Any, teacher: Teacher | None,
                 device: torch.device, amp_ctx: Callable[[], Any] = contextlib.nullcontext) -> None:
        self.users = [m for m in members if STRONG_VIEW in needs_of(m.loss)]
        self.kinds = sorted({strong_view_of(m.loss) for m in self.users})
        unknown = [k for k in self.kinds if k not in STRONG_VIEWS]
        if unknown:
            raise ConfigError(f"unknown strong view '{unknown[0]}' (known: {', '.join(STRONG_VIEWS)})")
        self.loader = loader
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

    def view(self, kind: str, x: Tensor, index: Tensor, seed: int) -> Tensor:
        if kind == "weak_randaugment":
            return strong_view(x, self.mean, self.std, seed)
        redraw = getattr(self.loader, "redraw", None)
        return authors_view(x, redraw(index, seed) if redraw is not None else x, self.mean, self.std, seed)

    def batch(self, x: Tensor, index: Tensor, epoch: int, step: int) -> dict[str, dict[str, Any]]:
        """Per kind, ``{"x": strong view, "teacher": teacher's response or None}`` for batch ``step`` of ``epoch``."""
        seed = view_seed(self.seed, epoch, step)
        out = {}
        for kind in self.kinds:
            xs = self.view(kind, x, index, seed)
            t = None
            if self.teacher is not None:
                with self.amp_ctx():
                    t = self.teacher(xs).float()
                for m in self.users:
                    if strong_view_of(m.loss) == kind and m.active and m.done_epochs < epoch:
                        m.queries += x.shape[0]
            out[kind] = {"x": xs, "teacher": t}
        return out

    @staticmethod
    def loss_inputs(m: Any, shared: dict[str, dict[str, Any]] | None) -> dict[str, Tensor]:
        """The keyword arguments member ``m``'s loss gets from the shared views (none if it does not need one)."""
        if not shared or STRONG_VIEW not in needs_of(m.loss):
            return {}
        view = shared[strong_view_of(m.loss)]
        return {"student_logits_strong": m.forward(view["x"]).float(), "teacher_logits_strong": view["teacher"]}
