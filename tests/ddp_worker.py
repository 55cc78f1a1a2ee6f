"""``kdzoo train`` on a tiny synthetic dataset; tests/test_ddp.py runs it under torchrun and in-process.

Not a test module: it registers the dataset ``ddp-synthetic`` (conftest's
``make_bundle``: class-coloured quadrants, 8x8 grey) and hands its arguments
to the kdzoo CLI.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from conftest import make_bundle  # noqa: E402

DATASET = "ddp-synthetic"


def register() -> None:
    from kdzoo.data.base import Augment
    from kdzoo.registry import DATASETS, register_dataset

    if DATASET in DATASETS:
        return

    @register_dataset(DATASET)
    def ddp_synthetic(data_root=None, *, val_size=0, seed=0, augment=False, download=False):
        """96 train / 48 test synthetic 8x8 images, 4 classes (tests only)."""
        bundle = make_bundle(n_train=96, n_test=48, classes=4, size=8)
        if augment:
            bundle.augment = Augment(crop_padding=1, flip=True)
        return bundle


if __name__ == "__main__":
    torch.set_num_threads(1)
    register()
    from kdzoo.cli import main

    sys.exit(main(sys.argv[1:]))
