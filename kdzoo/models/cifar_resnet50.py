"""The CIFAR ResNet-50 of RepDistiller / mdistiller (their ``ResNet50``): ImageNet bottleneck stages
(3-4-6-3 blocks, widths 64-128-256-512, expansion 4) behind a 3x3 stride-1 stem without max-pooling.

Names follow the published teacher checkpoint: ``conv1``, ``bn1``,
``layerK.i.{conv,bn}{1,2,3}``, ``layerK.i.shortcut.{0,1}``, ``linear``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()  # identity (no parameters) unless the shape changes
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + self.shortcut(x))


class CifarResNet50(nn.Module):
    def __init__(self, depths=(3, 4, 6, 3), num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, n, stride) in enumerate(zip((64, 128, 256, 512), depths, (1, 2, 2, 2)), start=1):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, planes, stride if b == 0 else 1))
                cin = planes * Bottleneck.expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = cin
        self.linear = nn.Linear(cin, num_classes)
        init_weights(self, conv="kaiming")

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.avgpool(self.forward_feature_map(x)).flatten(1)

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


@register_model("resnet50")
def resnet50(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-50 (bottlenecks, 3x3 stem), about 23.7M parameters at 100 classes."""
    return CifarResNet50(num_classes=num_classes, in_channels=in_channels)
