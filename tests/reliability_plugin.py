"""A kdzoo plugin for the reliability tests, named in a recipe's ``plugins`` list.

It registers, without any change to kdzoo:

- dataset ``reltest-tiny``: a tiny synthetic image set (64 train / 32 test images,
  1x8x8, 4 classes; option ``KDZOO_RELTEST_CHANNELS`` / ``_SIZE`` / ``_CLASSES``);
- loss ``reltest_count``: cross-entropy that appends ``TAG EPOCH PID`` to the file
  ``$KDZOO_RELTEST_COUNT`` on the first step of each epoch (to count how often each
  run trained each epoch);
- loss ``reltest_nan``: cross-entropy that turns NaN from epoch ``after`` on;

and, when ``$KDZOO_RELTEST_KILL`` is ``EVENT:N``, SIGKILLs its own process at the
N-th EVENT: ``step`` (an optimizer step), or a file name (``checkpoint.pt``,
``checkpoint.pt.sha256``, ``result.json``, ``model.pt``, ``leaderboard.csv``,
``summary.csv``, ``leaderboard.md``, ...): just before that file's atomic rename,
i.e. with its temporary file fully written but not yet in place.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

import kdzoo

sys.path.append(str(Path(__file__).resolve().parent))  # run from a recipe in a subprocess: find conftest.py
from conftest import make_bundle  # noqa: E402  (the test suite's one synthetic dataset)

torch.set_num_threads(1)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@kdzoo.register_dataset("reltest-tiny")
def reltest_tiny(data_root=None, *, val_size=0, seed=0, augment=False, download=False, **_):
    """Tiny synthetic images whose class is a bright quadrant (reliability tests)."""
    return make_bundle(n_train=64, n_test=32, classes=_env_int("KDZOO_RELTEST_CLASSES", 4),
                       size=_env_int("KDZOO_RELTEST_SIZE", 8), channels=_env_int("KDZOO_RELTEST_CHANNELS", 1),
                       val_size=val_size, split_seed=seed, name="reltest-tiny")


class _CE(kdzoo.DistillLoss):
    requires = "none"

    def ce(self, s, y):
        return torch.nn.functional.cross_entropy(s, y)


@kdzoo.register_loss("reltest_count")
class CountingCE(_CE):
    """Cross-entropy that logs each epoch it trains to $KDZOO_RELTEST_COUNT."""

    def __init__(self, tag: str = ""):
        super().__init__()
        self.tag, self._last = tag, None

    def forward(self, s, t, y, *, epoch=1, **batch):
        if epoch != self._last and os.environ.get("KDZOO_RELTEST_COUNT"):
            self._last = epoch
            fd = os.open(os.environ["KDZOO_RELTEST_COUNT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{self.tag} {epoch} {os.getpid()}\n".encode())
            finally:
                os.close(fd)
        return {"ce": self.ce(s, y)}


@kdzoo.register_loss("reltest_nan")
class NaNCE(_CE):
    """Cross-entropy that becomes NaN from epoch ``after`` on."""

    def __init__(self, after: int = 2):
        super().__init__()
        self.after = after

    def forward(self, s, t, y, *, epoch=1, **batch):
        ce = self.ce(s, y)
        return {"ce": ce * float("nan") if epoch >= self.after else ce}


# ------------------------------------------------------------------ fault injection
_KILL = os.environ.get("KDZOO_RELTEST_KILL", "")
if _KILL:
    _event, _, _n = _KILL.rpartition(":")
    _left = [int(_n)]

    def _hit() -> None:
        _left[0] -= 1
        if _left[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    if _event == "step":
        from torch.optim.optimizer import register_optimizer_step_pre_hook
        register_optimizer_step_pre_hook(lambda opt, args, kwargs: _hit())
    else:
        _replace = os.replace

        def _replace_and_maybe_die(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == _event:
                _hit()
            return _replace(src, dst, *args, **kwargs)

        os.replace = _replace_and_maybe_die
