"""A kdzoo plugin for the run-store tests (tests/test_store_*.py), named in a recipe's ``plugins`` list.

Loss ``storetest_hold``: cross-entropy that, on its first step, writes its process id to a file
in ``$KDZOO_STORETEST_PIDS`` and then waits until the file ``$KDZOO_STORETEST_RELEASE`` exists
(at most ten minutes). A worker training it stays busy for as long as a test needs, so the
test can kill the sweep's main process, or the worker, at a known moment.
"""
from __future__ import annotations

import os
import time

import torch

import kdzoo

HOLD_LIMIT_SECONDS = 600


@kdzoo.register_loss("storetest_hold")
class HoldCE(kdzoo.DistillLoss):
    """Cross-entropy that holds its first step until the test releases it."""
    requires = "none"

    def __init__(self, tag: str = ""):
        super().__init__()
        self.tag, self._held = tag, False

    def forward(self, s, t, y, *, epoch=1, **batch):
        pids, release = os.environ.get("KDZOO_STORETEST_PIDS"), os.environ.get("KDZOO_STORETEST_RELEASE")
        if not self._held and pids and release:
            self._held = True
            with open(os.path.join(pids, f"{os.getpid()}"), "w") as f:
                f.write(self.tag)
            end = time.monotonic() + HOLD_LIMIT_SECONDS
            while not os.path.exists(release) and time.monotonic() < end:
                time.sleep(0.05)
        return {"ce": torch.nn.functional.cross_entropy(s, y)}
