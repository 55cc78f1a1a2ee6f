"""A kdzoo plugin for the tuning tests, named in a recipe's ``plugins`` list.

- dataset ``tunetest-tiny``: tiny synthetic images (96 train / 32 test, 1x8x8, 4 classes) whose test split
  appends a line to ``$KDZOO_TUNETEST_READS`` each time its images or labels are read, in any process
  (the instrumentation that shows a tuning trial never looks at the test split);
- loss ``tunetest_kd``: Hinton's KD with a declared search space (temperature, log scale; kd_weight);
- loss ``tunetest_badspace``: a loss whose declared space names a parameter it does not take.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

import kdzoo
from kdzoo.data.base import DataBundle, TensorSplit, split_train_val
from kdzoo.space import Float

torch.set_num_threads(1)


class CountingSplit(TensorSplit):
    """A TensorSplit that logs every read of ``images`` or ``labels`` once it is built."""

    def __getattribute__(self, name):
        if name in ("images", "labels") and object.__getattribute__(self, "__dict__").get("_armed"):
            path = os.environ.get("KDZOO_TUNETEST_READS")
            if path:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{name} {os.getpid()}\n".encode())
                finally:
                    os.close(fd)
        return object.__getattribute__(self, name)


@kdzoo.register_dataset("tunetest-tiny")
def tunetest_tiny(data_root=None, *, val_size=0, seed=0, augment=False, download=False, **_):
    """Tiny synthetic images whose class is a bright quadrant; the test split counts its reads."""
    g = torch.Generator().manual_seed(4321)

    def split(n, cls=TensorSplit):
        y = torch.randint(0, 4, (n,), generator=g)
        x = torch.randint(0, 140, (n, 1, 8, 8), generator=g)
        for i in range(n):
            r, c = divmod(int(y[i]), 2)
            x[i, :, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 60
        return cls(x.clamp(0, 255).to(torch.uint8), y)

    train, test = split(96), split(32, CountingSplit)
    test._armed = True
    train, val = split_train_val(train, val_size, seed)
    return DataBundle(name="tunetest-tiny", train=train, test=test, val=val, num_classes=4, in_channels=1,
                      image_size=(8, 8), mean=(0.3,), std=(0.3,))


@kdzoo.register_loss("tunetest_kd")
class TuneTestKD(kdzoo.DistillLoss):
    """CE + kd_weight * T^2 KL(teacher_T || student_T)."""
    search_space = {"temperature": Float(1.0, 8.0, log=True), "kd_weight": Float(0.1, 2.0)}

    def __init__(self, temperature: float = 4.0, kd_weight: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise kdzoo.ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature, self.kd_weight = temperature, kd_weight

    def forward(self, s, t, y, **batch):
        T = self.temperature
        kl = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T
        return {"ce": F.cross_entropy(s, y), "kd": self.kd_weight * kl}


@kdzoo.register_loss("tunetest_badspace")
class BadSpace(TuneTestKD):
    """A declaration naming 'tau', which the loss does not take."""
    search_space = {"tau": Float(1.0, 8.0)}
