"""VGG with batch norm for CIFAR (the RepDistiller / mdistiller variant).

Five conv blocks ``block0..block4`` (3x3 conv with bias, BN, ReLU; the last
ReLU of each block is applied in ``forward``), max-pooling between the first
four, global average pooling and a single linear ``classifier`` (512 -> classes):
no fully connected hidden layers. ``vgg8/11/13/16/19`` here are RepDistiller's
``vgg*_bn``; ``vgg13`` is the published CIFAR-100 teacher.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights

CONFIGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


def _block(widths: list[int], cin: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for cout in widths:
        layers += [nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        cin = cout
    return nn.Sequential(*layers[:-1])  # keys: block.0 conv, block.1 bn, (block.2 relu), block.3 conv, ...


class CifarVGG(nn.Module):
    def __init__(self, cfg: list[list[int]], num_classes: int = 100, in_channels: int = 3) -> None:
        super().__init__()
        cin = in_channels
        for i, widths in enumerate(cfg):
            self.add_module(f"block{i}", _block(widths, cin))
            cin = widths[-1]
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool4 = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = cin
        self.classifier = nn.Linear(cin, num_classes)
        init_weights(self, conv="fan_out", linear_std=0.01)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        pool_before_last = x.shape[2] >= 64  # the reference pools once more for 64x64 (Tiny-ImageNet) input
        x = self.pool0(F.relu(self.block0(x)))
        x = self.pool1(F.relu(self.block1(x)))
        x = self.pool2(F.relu(self.block2(x)))
        x = F.relu(self.block3(x))
        if pool_before_last:
            x = self.pool3(x)
        return F.relu(self.block4(x))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.pool4(self.forward_feature_map(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def _factory(name: str) -> None:
    def build(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
        return CifarVGG(CONFIGS[name], num_classes, in_channels)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"CIFAR {name.upper()} with batch norm, global average pooling and one linear layer."
    globals()[name] = register_model(name, build)


for _name in CONFIGS:
    _factory(_name)
