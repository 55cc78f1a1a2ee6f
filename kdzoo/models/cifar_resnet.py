"""CIFAR ResNets (He et al. 2016, 6n+2 layers, three stages) in the layout used by RepDistiller / mdistiller.

``resnet8`` ... ``resnet110`` use 16-16-32-64 channels; ``resnet8x4`` and
``resnet32x4`` are four times wider (32-64-128-256). Module and parameter
names follow the published CIFAR-100 teacher checkpoints, so those load with
``kdzoo.models.checkpoint.load_weights(model, path)`` unchanged.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN ``downsample``) shortcut, ReLU after the sum."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + shortcut)


class CifarResNet(nn.Module):
    """Stem 3x3 conv-BN-ReLU, three stages of ``(depth - 2) // 6`` basic blocks (strides 1, 2, 2),
    global average pooling and a linear classifier ``fc``."""

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 100,
                 in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        cin = widths[0]
        for i, (cout, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            layer = []
            for b in range(blocks):
                layer.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*layer))
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self, conv="kaiming")

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))  # = AvgPool2d(8) on the 8x8 map of a 32x32 input

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


_NARROW = (16, 16, 32, 64)
_WIDE = (32, 64, 128, 256)


def _factory(name: str, depth: int, widths: tuple[int, int, int, int]) -> None:
    def build(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
        return CifarResNet(depth, widths, num_classes, in_channels)
    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = f"CIFAR ResNet-{depth}, stage widths {'-'.join(map(str, widths))} (RepDistiller '{name}')."
    globals()[name] = register_model(name, build)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _factory(f"resnet{_depth}", _depth, _NARROW)
_factory("resnet8x4", 8, _WIDE)
_factory("resnet32x4", 32, _WIDE)
