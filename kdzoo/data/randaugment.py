"""The strong augmentation MLKD's and CRLD's authors train with: a FixMatch-style RandAugment.

Per image, in this order: two operations drawn with replacement from the 14 of ``OPS``, each at a
magnitude drawn uniformly from its own range (the authors' ``RandAugment(2, 10)`` ignores its 10),
then a Cutout: a square of side ``u * width``, u uniform in [0, 0.5), filled with the gray
(125, 123, 114). The operations are PIL's (nearest-neighbour resampling, black fill for the
geometric ones). Randomness comes from a ``random.Random`` (the choice of operations, their
magnitudes, the Cutout size) and a ``numpy.random.RandomState`` (the Cutout position), drawn in the
authors' order: seeding both as they seed ``random`` and ``numpy.random`` gives their images pixel
for pixel (golden values in tests/test_views.py).

Kept as they wrote it: Brightness, Color, Contrast and Sharpness factors lie in [0.05, 0.95], so
these only ever weaken the image; the Cutout's centre is drawn as ``uniform(w)``, i.e. from (1, w]
rather than [0, w), then clipped to the image. Their fill colour is RGB, which PIL refuses on a
one-channel image; kdzoo fills grayscale images with that colour's gray (PIL's RGB to L
conversion, 123).

Sources: Jin-Ying/Multi-Level-Logit-Distillation @ 5ee473f and arcaninez/CRLD @ fe42473,
``mdistiller/dataset/cifar100.py`` (``RandAugment``, ``augment_list``, ``Cutout``): the same in both.
"""
from __future__ import annotations

import random
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from torch import Tensor

from ..errors import ConfigError

CUTOUT_FILL = (125, 123, 114)
MAX_CUTOUT = 0.5   # the largest Cutout side, as a fraction of the width


def _affine(coefficients: Callable[[Image.Image, float], tuple]) -> Callable[[Image.Image, float], Image.Image]:
    return lambda img, v: img.transform(img.size, Image.AFFINE, coefficients(img, v))


# (name, lowest magnitude, highest magnitude, operation(image, magnitude)), in the authors' order:
# the order decides which operation a random draw picks.
OPS: list[tuple[str, float, float, Callable[[Image.Image, float], Image.Image]]] = [
    ("AutoContrast", 0, 1, lambda img, _v: ImageOps.autocontrast(img)),
    ("Brightness", 0.05, 0.95, lambda img, v: ImageEnhance.Brightness(img).enhance(v)),
    ("Color", 0.05, 0.95, lambda img, v: ImageEnhance.Color(img).enhance(v)),
    ("Contrast", 0.05, 0.95, lambda img, v: ImageEnhance.Contrast(img).enhance(v)),
    ("Equalize", 0, 1, lambda img, _v: ImageOps.equalize(img)),
    ("Identity", 0, 1, lambda img, _v: img),
    ("Posterize", 4, 8, lambda img, v: ImageOps.posterize(img, max(1, int(v)))),
    ("Rotate", -30, 30, lambda img, v: img.rotate(v)),
    ("Sharpness", 0.05, 0.95, lambda img, v: ImageEnhance.Sharpness(img).enhance(v)),
    ("ShearX", -0.3, 0.3, _affine(lambda img, v: (1, v, 0, 0, 1, 0))),
    ("ShearY", -0.3, 0.3, _affine(lambda img, v: (1, 0, 0, v, 1, 0))),
    ("Solarize", 0, 256, lambda img, v: ImageOps.solarize(img, v)),
    ("TranslateX", -0.3, 0.3, _affine(lambda img, v: (1, 0, v * img.size[0], 0, 1, 0))),
    ("TranslateY", -0.3, 0.3, _affine(lambda img, v: (1, 0, 0, 0, 1, v * img.size[1]))),
]


def _cutout(img: Image.Image, fraction: float, positions: np.random.RandomState) -> Image.Image:
    if fraction <= 0:
        return img
    w, h = img.size
    side = fraction * w
    x0 = int(max(0, positions.uniform(w) - side / 2.0))   # uniform(w): low=w, high=1 (see the docstring)
    y0 = int(max(0, positions.uniform(h) - side / 2.0))
    fill = CUTOUT_FILL if img.mode == "RGB" else Image.new("RGB", (1, 1), CUTOUT_FILL).convert(img.mode).getpixel((0, 0))
    img = img.copy()
    ImageDraw.Draw(img).rectangle((x0, y0, min(w, x0 + side), min(h, y0 + side)), fill)
    return img


def augment_image(img: Image.Image, draws: random.Random, positions: np.random.RandomState,
                  num_ops: int = 2) -> Image.Image:
    """One image: ``num_ops`` random operations at random magnitudes, then the Cutout."""
    for _name, low, high, op in draws.choices(OPS, k=num_ops):
        img = op(img, low + float(high - low) * draws.random())
    return _cutout(img, draws.random() * MAX_CUTOUT, positions)


def augment_batch(images: Tensor, seed: int, num_ops: int = 2) -> Tensor:
    """Each uint8 image of (N, C, H, W) ``images`` (C = 1 or 3) augmented in turn, reproducibly from ``seed``."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(f"the authors' strong view works on uint8 images with 1 or 3 channels, got "
                          f"{images.dtype} {tuple(images.shape)}")
    draws, positions = random.Random(seed), np.random.RandomState(seed % 2 ** 32)
    arrays = images.cpu().permute(0, 2, 3, 1).numpy()
    out = []
    for a in arrays:
        img = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
        out.append(np.asarray(augment_image(img, draws, positions, num_ops)).reshape(a.shape))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
