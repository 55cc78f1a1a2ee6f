"""Shared fixtures: tiny synthetic data so trainer tests take seconds."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.data.base import find_dataset_dir
from kdzoo.data.fashion_mnist import FILES as FMNIST_FILES
from kdzoo.errors import DataNotFoundError

REPO = Path(__file__).resolve().parents[1]


def _find_fmnist() -> Path | None:
    """Fashion-MNIST where the CLI finds it ($KDZOO_DATA, ../shared/data, /usr/share/datasets, ...), or None."""
    try:
        return find_dataset_dir(["fashion-mnist", "FashionMNIST/raw"], list(FMNIST_FILES.values()), None, "")
    except DataNotFoundError:
        return None


FMNIST = _find_fmnist()
needs_fmnist = pytest.mark.skipif(FMNIST is None, reason="Fashion-MNIST files not present")

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _user_cache(tmp_path_factory):
    """Products cached without a given folder (kdzoo.engine.prepare.default_cache_dir) go to a temporary
    folder, not the user's cache: the suite leaves nothing behind."""
    patch = pytest.MonkeyPatch()
    patch.setenv("KDZOO_CACHE", str(tmp_path_factory.mktemp("kdzoo-cache")))
    yield
    patch.undo()


def pytest_collection_modifyitems(config, items):
    if os.environ.get("KDZOO_SLOW") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow test: run with KDZOO_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def make_bundle(n_train: int = 96, n_test: int = 48, classes: int = 4, size: int = 8, channels: int = 1,
                seed: int = 0):
    """Images whose class is visible (a bright quadrant per class) so models can learn it."""
    from kdzoo.data.base import DataBundle, TensorSplit

    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> TensorSplit:
        y = torch.randint(0, classes, (n,), generator=g)
        x = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.int64)
        half = size // 2
        for i in range(n):
            r, c = divmod(int(y[i]) % 4, 2)
            x[i, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 150
        return TensorSplit(x.clamp(0, 255).to(torch.uint8), y)

    return DataBundle(name="synthetic", train=split(n_train), test=split(n_test), num_classes=classes,
                      in_channels=channels, image_size=(size, size), mean=(0.3,), std=(0.3,))


@pytest.fixture
def bundle():
    return make_bundle()


@pytest.fixture
def run_cli(tmp_path):
    """Run the kdzoo CLI in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args: str, env: dict | None = None, timeout: int = 300):
        return subprocess.run([sys.executable, "-m", "kdzoo", *args], capture_output=True, text=True,
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                              timeout=timeout)
    return run
