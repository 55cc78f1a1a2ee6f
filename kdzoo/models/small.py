"""Small models for Fashion-MNIST-scale data (28x28 grey images, CPU-friendly).

``fmnist_teacher`` reaches about 92-93% test top-1 in a few CPU minutes; the
students are deliberately weak so that distillation has room to show.
"""
from __future__ import annotations


from torch import Tensor, nn

from ..registry import register_model


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """Stages of 3x3 conv-BN-ReLU blocks separated by 2x2 max-pooling, global average pool, linear head."""

    def __init__(self, stages: list[list[int]], num_classes: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, stage in enumerate(stages):
            if i:
                layers.append(nn.MaxPool2d(2))
            for cout in stage:
                layers.append(_conv_bn(cin, cout))
                cin = cout
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)

    def forward_feature_map(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3))

    @property
    def classifier(self) -> nn.Module:
        """The head mapping pooled features to logits (feature-map losses such as SDD apply it per region)."""
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


class MLP(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int] | int, hidden: int) -> None:
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.num_features = hidden
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, hidden), nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


@register_model("fmnist_teacher")
def fmnist_teacher(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Five conv-BN-ReLU layers (16 | 32-32 | 64-64), about 0.07M parameters."""
    return ConvNet([[16], [32, 32], [64, 64]], num_classes, in_channels)


@register_model("fmnist_cnn_tiny")
def fmnist_cnn_tiny(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Two conv-BN-ReLU layers (8 | 16), about 1.5k parameters."""
    return ConvNet([[8], [16]], num_classes, in_channels)


@register_model("fmnist_mlp")
def fmnist_mlp(num_classes: int = 10, in_channels: int = 1, image_size: tuple[int, int] | int = 28,
               hidden: int = 32) -> nn.Module:
    """One hidden layer of 32 units, about 25k parameters."""
    return MLP(num_classes, in_channels, image_size, hidden)
