"""A frozen MEKD generator compiled for the distillation stage: same function, less work per call.

During distillation G is fixed (eval mode) and runs three times per student step (the generated
batch, G(t/tau), G(s/tau) with its backward), so it is most of the step's cost
(benchmarks/mekd_step.py). Two exact rewrites make it cheaper:

- each eval-mode BatchNorm is an affine map per channel, folded into the layer before it
  (the first into the linear layer, the others into their convolutions);
- activations and weights in channels_last, which the CPU convolution kernels run faster.

Outputs equal the plain Generator's up to float rounding (about 1e-7; tests/test_mekd.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # only for annotations: the stage that trains the generator owns its class
    from ..stages.dcgan import Generator

CL = torch.channels_last


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class FrozenGenerator:
    """``FrozenGenerator(g)(z) == g.eval()(z)`` with g's BatchNorms folded; a snapshot of g's weights."""

    def __init__(self, g: Generator) -> None:
        bn0, _, c1, bn1, act1, _, c2, bn2, act2, c3, _ = list(g.body)
        with torch.no_grad():
            s0, b0 = _bn_scale_shift(bn0)
            per = g.h0 * g.w0                      # fc's outputs are (channel, y, x) in that order
            s0, b0 = s0.repeat_interleave(per), b0.repeat_interleave(per)
            self.fc_w, self.fc_b = g.fc.weight * s0[:, None], g.fc.bias * s0 + b0
            s1, b1 = _bn_scale_shift(bn1)
            self.w1 = (c1.weight * s1.view(-1, 1, 1, 1)).contiguous(memory_format=CL)
            self.b1 = c1.bias * s1 + b1
            s2, b2 = _bn_scale_shift(bn2)
            self.w2 = (c2.weight * s2.view(-1, 1, 1, 1)).contiguous(memory_format=CL)
            self.b2 = c2.bias * s2 + b2
            self.w3, self.b3 = c3.weight.detach().contiguous(memory_format=CL), c3.bias.detach().clone()
        self.slope1, self.slope2 = act1.negative_slope, act2.negative_slope
        self.size, self.h0, self.w0 = g.size, g.h0, g.w0

    def __call__(self, z: Tensor) -> Tensor:
        x = F.linear(z, self.fc_w, self.fc_b).view(z.shape[0], -1, self.h0, self.w0).contiguous(memory_format=CL)
        x = F.leaky_relu(F.conv2d(F.interpolate(x, scale_factor=2), self.w1, self.b1, padding=1), self.slope1)
        x = F.leaky_relu(F.conv2d(F.interpolate(x, scale_factor=2), self.w2, self.b2, padding=1), self.slope2)
        x = torch.tanh(F.conv2d(x, self.w3, self.b3, padding=1))
        (h, w), oy, ox = self.size, (x.shape[2] - self.size[0]) // 2, (x.shape[3] - self.size[1]) // 2
        return x[:, :, oy:oy + h, ox:ox + w]


def weights_version(g: nn.Module) -> tuple[int, ...] | None:
    """Changes whenever any of g's parameters or buffers is modified in place (training, load_state_dict)
    or replaced (``.to(device)``); None when unknown (inference tensors keep no version): rebuild."""
    try:
        return tuple(v for t in g.state_dict(keep_vars=True).values() for v in (t.data_ptr(), t._version))
    except RuntimeError:
        return None
