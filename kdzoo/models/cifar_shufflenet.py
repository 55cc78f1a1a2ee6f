"""ShuffleNet V1 (Zhang et al. 2018) and V2 (Ma et al. 2018) for 32x32 inputs, RepDistiller / mdistiller layout.

Both use a 1x1 stem without down-sampling; three stages each halve the
resolution, so a 32x32 image ends as a 4x4 map that is average-pooled.
Registered as ``shufflenetv1`` (their ``ShuffleV1``: groups 3, widths
240-480-960, 4-8-4 blocks) and ``shufflenetv2`` (their ``ShuffleV2``: net size
1, widths 116-232-464 and a 1024-channel 1x1 conv).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_model


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Unit(nn.Module):
    """Grouped 1x1 -> shuffle -> depthwise 3x3 -> grouped 1x1; stride-2 units concatenate an avg-pooled shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, groups: int) -> None:
        super().__init__()
        self.stride = stride
        mid = cout // 4
        self.first_groups = 1 if cin == 24 else groups  # the stem output is too narrow to group
        self.conv1 = nn.Conv2d(cin, mid, kernel_size=1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        y = channel_shuffle(F.relu(self.bn1(self.conv1(x))), self.first_groups)
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        if self.stride == 2:
            return F.relu(torch.cat([y, F.avg_pool2d(x, 3, stride=2, padding=1)], 1))
        return F.relu(y + x)


class ShuffleNetV1(nn.Module):
    def __init__(self, widths=(240, 480, 960), depths=(4, 8, 4), groups: int = 3, num_classes: int = 100,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip(widths, depths), start=1):
            units = []
            for b in range(n):
                # the first unit of a stage concatenates its input, so its branch makes only the difference
                units.append(ShuffleV1Unit(cin, cout - cin if b == 0 else cout, 2 if b == 0 else 1, groups))
                cin = cout
            self.add_module(f"layer{i}", nn.Sequential(*units))
        self.num_features = cin
        self.linear = nn.Linear(cin, num_classes)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


class ShuffleV2Unit(nn.Module):
    """Split channels in half; the second half goes 1x1 -> depthwise 3x3 -> 1x1; concat and shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels // 2
        self.conv1 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, kernel_size=3, stride=1, padding=1, groups=c, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, c, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1] // 2
        keep, y = x[:, :c], x[:, c:]
        y = F.relu(self.bn1(self.conv1(y)))
        y = self.bn2(self.conv2(y))
        y = F.relu(self.bn3(self.conv3(y)))
        return channel_shuffle(torch.cat([keep, y], 1), 2)


class ShuffleV2Down(nn.Module):
    """Stride-2 unit: two branches (depthwise-first and pointwise-first), each giving half the output channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.conv1 = nn.Conv2d(cin, cin, kernel_size=3, stride=2, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = nn.Conv2d(cin, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(cin, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, widths=(116, 232, 464, 1024), depths=(3, 7, 3), num_classes: int = 100,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip(widths[:3], depths), start=1):
            self.add_module(f"layer{i}", nn.Sequential(ShuffleV2Down(cin, cout),
                                                       *[ShuffleV2Unit(cout) for _ in range(n)]))
            cin = cout
        self.conv2 = nn.Conv2d(cin, widths[3], kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(widths[3])
        self.num_features = widths[3]
        self.linear = nn.Linear(widths[3], num_classes)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.relu(self.bn2(self.conv2(x)))

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.linear

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.forward_features(x))


@register_model("shufflenetv1")
def shufflenetv1(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """ShuffleNet V1 (g=3) for 32x32 images, about 0.95M parameters at 100 classes."""
    return ShuffleNetV1(num_classes=num_classes, in_channels=in_channels)


@register_model("shufflenetv2")
def shufflenetv2(num_classes: int = 100, in_channels: int = 3) -> nn.Module:
    """ShuffleNet V2 (1x) for 32x32 images, about 1.36M parameters at 100 classes."""
    return ShuffleNetV2(num_classes=num_classes, in_channels=in_channels)
