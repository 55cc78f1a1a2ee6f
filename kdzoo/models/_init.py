"""Weight initialization shared by the CIFAR zoo.

Each reference implementation (RepDistiller/mdistiller) initializes its
networks slightly differently; these options reproduce each one exactly,
including the order in which random numbers are drawn, so a seed gives the
same initial weights as before the code was shared.
"""
from __future__ import annotations

import math

from torch import nn


def init_weights(model: nn.Module, *, conv: str, linear_std: float | None = None,
                 zero_linear_bias: bool = False) -> None:
    """``conv``: "kaiming" (He normal, fan-out, ReLU gain) or "fan_out" (normal with
    std sqrt(2 / fan_out), conv biases zeroed). BatchNorm gets weight 1, bias 0.
    Linear layers get normal(0, linear_std) weights and zero biases when ``linear_std``
    is given, only zero biases with ``zero_linear_bias``, else PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if conv == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if linear_std is not None or zero_linear_bias:
                nn.init.zeros_(m.bias)
