"""Named, seeded distribution shifts for the student side's images (edge-cloud data disparity).

A shift is a string of steps joined by ``+``, each ``name`` or ``name:value``:

==============  ===========================================================
brightness:B    add B grey levels (0-255 scale; negative darkens), clipped
contrast:C      scale each image's deviation from its own mean by C
gamma:G         x -> 255 * (x / 255) ** G
rotate:D        rotate each image by a fixed random angle in [-D, D] degrees
                (bilinear, zero fill); the angle of image i depends only on
                the shift seed and i
noise:S         add fixed Gaussian noise of std S grey levels, clipped
invert          x -> 255 - x
==============  ===========================================================

e.g. ``"contrast:0.5+brightness:40"`` or ``"rotate:25"``. The result is a new
``TensorSplit`` of uint8 images with the same labels; the same string and seed
always give the same images. Used by ``RunSpec.student_shift``, which applies
it to the student side's training split only (the teacher was trained, and the
test split is evaluated, on the original distribution).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError, did_you_mean
from .base import TensorSplit


def _brightness(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    return x + v


def _contrast(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * v + mean


def _gamma(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    if v <= 0:
        raise ConfigError(f"shift gamma:{v} needs a positive exponent")
    return 255.0 * (x / 255.0).clamp_min(0) ** v


def _rotate(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    angle = (torch.rand(x.shape[0], generator=g) * 2 - 1) * math.radians(v)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.zeros(x.shape[0], 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _noise(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    return x + v * torch.randn(x.shape, generator=g)


def _invert(x: Tensor, v: float, g: torch.Generator) -> Tensor:
    return 255.0 - x


SHIFTS = {"brightness": _brightness, "contrast": _contrast, "gamma": _gamma, "rotate": _rotate,
          "noise": _noise, "invert": _invert}
NEEDS_VALUE = {"brightness", "contrast", "gamma", "rotate", "noise"}
CHUNK = 4096  # images shifted at a time; part of what fixes the random draws


def parse_shift(spec: str) -> list[tuple[str, float]]:
    """``"contrast:0.5+rotate:20"`` -> [("contrast", 0.5), ("rotate", 20.0)], validated."""
    steps = []
    for part in str(spec).split("+"):
        name, _, value = part.strip().partition(":")
        if name not in SHIFTS:
            raise ConfigError(f"unknown student shift '{name}' in '{spec}'{did_you_mean(name, SHIFTS)} "
                              f"(choose from: {', '.join(SHIFTS)})")
        if name in NEEDS_VALUE and not value:
            raise ConfigError(f"student shift '{name}' needs a value, e.g. '{name}:0.5'")
        if name not in NEEDS_VALUE and value:
            raise ConfigError(f"student shift '{name}' takes no value")
        try:
            steps.append((name, float(value) if value else 0.0))
        except ValueError:
            raise ConfigError(f"student shift '{part}': '{value}' is not a number") from None
    return steps


def apply_shift(split: TensorSplit, spec: str, seed: int = 0) -> TensorSplit:
    """Return ``split`` with the named shift applied to its images (labels unchanged)."""
    steps = parse_shift(spec)
    if not isinstance(split, TensorSplit):
        raise ConfigError(f"student shift '{spec}' needs an in-memory dataset (a TensorSplit)")
    out = torch.empty_like(split.images)
    for start in range(0, len(split), CHUNK):
        x = split.images[start:start + CHUNK].float()
        for i, (name, value) in enumerate(steps):
            # one generator per (seed, step, chunk of fixed size): reproducible in any process
            g = torch.Generator().manual_seed((int(seed) * 1_000_003 + i * 7919 + start) % (2 ** 63))
            x = SHIFTS[name](x, value, g)
        out[start:start + CHUNK] = x.round().clamp(0, 255).to(torch.uint8)
    return TensorSplit(out, split.labels.clone())
