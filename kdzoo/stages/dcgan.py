"""DCGAN generator and discriminator of the deprivatization stage (any image size).

Architectures as in ``kdzoo.losses.mekd``'s docstring (Ma et al., CVPR 2024, arXiv 2205.10490); the
stage (deprivatize.py) trains them, MEKD's loss runs the frozen generator (losses/_frozen_gen.py).
"""
from __future__ import annotations

from torch import Tensor, nn


class Generator(nn.Module):
    """``bn_eps``: eps of the 2nd and 3rd BatchNorm (the authors' DCGAN: 0.8; the first keeps 1e-5)."""

    def __init__(self, latent: int, channels: int, size: tuple[int, int], width: int = 128,
                 bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.size, self.h0, self.w0 = tuple(size), -(-size[0] // 4), -(-size[1] // 4)
        self.fc = nn.Linear(latent, width * self.h0 * self.w0)
        up = lambda: nn.Upsample(scale_factor=2)  # noqa: E731
        self.body = nn.Sequential(
            nn.BatchNorm2d(width), up(), nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width, bn_eps),
            nn.LeakyReLU(0.2), up(), nn.Conv2d(width, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2, bn_eps),
            nn.LeakyReLU(0.2), nn.Conv2d(width // 2, channels, 3, padding=1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        x = self.body(self.fc(z).view(z.shape[0], -1, self.h0, self.w0))
        (h, w), oy, ox = self.size, (x.shape[2] - self.size[0]) // 2, (x.shape[3] - self.size[1]) // 2
        return x[:, :, oy:oy + h, ox:ox + w]


class Discriminator(nn.Module):
    """Returns logits; sigmoid(D(x)) is the probability that x is real. ``bn_eps``: eps of its BatchNorms."""

    def __init__(self, channels: int, size: tuple[int, int], width: int = 16, bn_eps: float = 1e-5) -> None:
        super().__init__()
        layers, cin, (h, w) = [], channels, size
        for i in range(4):
            cout, h, w = width * 2 ** i, -(-h // 2), -(-w // 2)
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(0.2), nn.Dropout2d(0.25)]
            layers += [nn.BatchNorm2d(cout, bn_eps)] if i else []
            cin = cout
        self.features, self.head = nn.Sequential(*layers), nn.Linear(cin * h * w, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)


def dcgan_init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
