"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016), WRN-depth-k, in the RepDistiller / mdistiller layout.

Pre-activation blocks (BN-ReLU-conv twice); when a block changes width or
stride, the pre-activated input goes through a 1x1 ``convShortcut``. Names
follow the published CIFAR-100 teacher checkpoints (``wrn_40_2``).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.equal_in_out = cin == cout
        self.convShortcut: nn.Module | None = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        y = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        # with equal widths the shortcut is the raw input, otherwise a 1x1 conv of the pre-activated input
        return (x if self.convShortcut is None else self.convShortcut(pre)) + y


class NetworkBlock(nn.Module):
    """One stage: ``n`` wide blocks under the attribute ``layer`` (the checkpoint key prefix)."""

    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """Stem conv, three stages (``block1..3``, widths 16k, 32k, 64k, strides 1, 2, 2), BN-ReLU, pool, ``fc``."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.num_features = widths[3]
        self.fc = nn.Linear(widths[3], num_classes)
        init_weights(self, conv="fan_out", zero_linear_bias=True)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn1(x))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


def _factory(depth: int, k: int) -> None:
    name = f"wrn_{depth}_{k}"

    def build(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
        return WideResNet(depth, k, num_classes, in_channels)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"Wide ResNet-{depth}-{k} for 32x32 images."
    globals()[name] = register_model(name, build)


for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    _factory(_d, _k)
