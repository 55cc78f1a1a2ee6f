"""MobileNetV2 for CIFAR as used by RepDistiller / mdistiller (their ``mobile_half``, mdistiller's ``MobileNetV2``).

Expansion ratio T=6 and width multiplier 0.5 (stem 16 channels, last 1x1 conv
kept at 1280). The stem has stride 2, so a 32x32 image ends as a 2x2 map that
is average-pooled. Names follow the reference: ``conv1``, ``blocks.i.j.conv.k``,
``conv2``, ``classifier.0``.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..registry import register_model
from ._init import init_weights

# (expansion, output channels, repeats, first stride); expansion None = the model's T
_SETTING = [(1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2), (None, 64, 4, 2),
            (None, 96, 3, 1), (None, 160, 3, 2), (None, 320, 1, 1)]


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise (stride), 1x1 linear projection; identity shortcut when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class CifarMobileNetV2(nn.Module):
    def __init__(self, expansion: int = 6, width_mult: float = 0.5, num_classes: int = 100,
                 in_channels: int = 3) -> None:
        super().__init__()
        cin = int(32 * width_mult)
        self.conv1 = _conv_bn_relu(in_channels, cin, 3, 2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in _SETTING:
            cout = int(c * width_mult)
            stage = []
            for i in range(n):
                stage.append(InvertedResidual(cin, cout, s if i == 0 else 1, expansion if t is None else t))
                cin = cout
            self.blocks.append(nn.Sequential(*stage))
        last = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = _conv_bn_relu(cin, last, 1, 1)
        self.num_features = last
        self.classifier = nn.Sequential(nn.Linear(last, num_classes))
        init_weights(self, conv="fan_out", linear_std=0.01)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        for stage in self.blocks:
            x = stage(x)
        return self.conv2(x)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """Half-width CIFAR MobileNetV2 (T=6, width 0.5), about 0.81M parameters at 100 classes."""
    return CifarMobileNetV2(6, 0.5, num_classes, in_channels)
