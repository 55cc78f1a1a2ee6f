"""The CIFAR ResNet-18 of RepDistiller / mdistiller (their ``ResNet18`` in models/resnetv2.py):
ImageNet BasicBlock stages (2-2-2-2 blocks, widths 64-128-256-512) behind a 3x3 stride-1 stem
without max-pooling; 11,220,132 parameters at 100 classes.

Names follow the published checkpoints: ``conv1``, ``bn1``, ``layerK.i.{conv,bn}{1,2}``,
``layerK.i.shortcut.{0,1}`` (only where the shape changes), ``linear``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()  # identity (no parameters) unless the shape changes
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class CifarResNet18(nn.Module):
    def __init__(self, depths: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 100,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (cout, n, stride) in enumerate(zip((64, 128, 256, 512), depths, (1, 2, 2, 2)), start=1):
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = cin
        self.linear = nn.Linear(cin, num_classes)
        init_weights(self, conv="kaiming")

    @property
    def classifier(self) -> nn.Module:
        """The module mapping pooled (N, C) features to logits."""
        return self.linear

    def forward_feature_map(self, x: Tensor) -> Tensor:
        """(N, 512, H/8, W/8) output of the last stage, before global pooling."""
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.avgpool(self.forward_feature_map(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


@register_model("resnet18")
def resnet18(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-18 (BasicBlocks, 3x3 stem, no max-pool), 11.22M parameters at 100 classes."""
    return CifarResNet18(num_classes=num_classes, in_channels=in_channels)
