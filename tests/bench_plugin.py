"""A user's plugin file, as a recipe names it in ``plugins:``: a tiny dataset and two losses.

Used by the bench tests. ``my_kd`` appends its process id to the file named by
$KDZOO_BENCH_COUNTER the first time an instance trains (once per run execution),
and sleeps ``delay`` seconds per step so that a sweep lasts long enough to be
interrupted (tests/test_cli_interrupt.py). ``boom`` raises during training.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch.nn.functional as F

import kdzoo
from kdzoo.data.base import DataBundle

sys.path.append(str(Path(__file__).resolve().parent))  # run from a recipe in a subprocess: find conftest.py
from conftest import make_bundle  # noqa: E402  (the test suite's one synthetic dataset)


@kdzoo.register_dataset("bench-synth")
def bench_synth(data_root=None, *, val_size=0, seed=0, augment=False, download=False) -> DataBundle:
    """8x8 grey images whose class (of 4) is a bright quadrant; 64 train / 32 test."""
    return make_bundle(n_train=64, n_test=32, val_size=val_size, split_seed=seed, name="bench-synth")


@kdzoo.register_loss("my_kd")
class MyKD(kdzoo.DistillLoss):
    """Plugin KD: CE + T^2 KL on probabilities."""
    requires = "probs"
    paper = "a user's plugin (tests/bench_plugin.py)"

    def __init__(self, temperature: float = 2.0, delay: float = 0.0) -> None:
        super().__init__()
        self.temperature, self.delay = temperature, delay
        self._counted = False

    def forward(self, student_logits, teacher_logits, target, *, epoch=1, **batch):
        if not self._counted:
            self._counted = True
            counter = os.environ.get("KDZOO_BENCH_COUNTER")
            if counter:
                with open(counter, "a") as f:
                    f.write(f"{os.getpid()}\n")
        if self.delay:
            time.sleep(self.delay)
        s, t = student_logits.float(), teacher_logits.float()
        T = self.temperature
        kl = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t / T, 1), log_target=True, reduction="batchmean")
        return {"ce": F.cross_entropy(s, target), "my_kd": T * T * kl}


@kdzoo.register_loss("boom")
class Boom(kdzoo.DistillLoss):
    """Fails in its first training step."""
    requires = "none"

    def __init__(self, ce_weight: float = 1.0) -> None:
        super().__init__()

    def forward(self, student_logits, teacher_logits, target, *, epoch=1, **batch):
        raise RuntimeError("boom: this loss always fails")
