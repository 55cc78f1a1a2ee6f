"""Shared fixtures: the suite's one synthetic dataset (``make_bundle``), so trainer tests take seconds.

The plugin files that recipes in the tests name (bench_plugin.py, reliability_plugin.py) register
datasets built by ``make_bundle`` too; run in a subprocess, they import this file by path.
"""
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
    """Fashion-MNIST where the CLI finds it ($KDZOO_DATA, /usr/share/datasets, ...), or None."""
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
                seed: int = 0, val_size: int | float = 0, split_seed: int = 0, name: str = "synthetic"):
    """Images whose class is visible (a bright quadrant per class) so models can learn it.

    ``val_size`` images (or that fraction) of the train split become a validation split, chosen by
    ``split_seed`` as a dataset's own ``val_size``/``seed`` options do.
    """
    from kdzoo.data.base import DataBundle, TensorSplit, split_train_val

    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> TensorSplit:
        y = torch.randint(0, classes, (n,), generator=g)
        x = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.int64)
        half = size // 2
        for i in range(n):
            r, c = divmod(int(y[i]) % 4, 2)
            x[i, :, r * half:(r + 1) * half, c * half:(c + 1) * half] += 150
        return TensorSplit(x.clamp(0, 255).to(torch.uint8), y)

    train, test = split(n_train), split(n_test)
    train, val = split_train_val(train, val_size, split_seed)
    return DataBundle(name=name, train=train, test=test, val=val, num_classes=classes,
                      in_channels=channels, image_size=(size, size), mean=(0.3,), std=(0.3,))


@pytest.fixture
def bundle():
    return make_bundle()


def git_status(root: Path = REPO) -> set[str] | None:
    """``git status --porcelain`` of the checkout as a set of lines (new, untracked or modified files; ignored
    ones, such as runs/, are not listed); None outside a git checkout."""
    import subprocess

    try:
        proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return set(proc.stdout.splitlines()) if proc.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean():
    """After the whole session, nothing is new, untracked or modified in the checkout that was not so before:
    tests and what they run write only to tmp paths or git-ignored run folders. A leftover fails the suite (an
    error at the teardown of its last test), naming the files."""
    before = git_status()
    yield
    after = git_status()
    if before is not None and after is not None:
        left = sorted(after - before)
        assert not left, f"the test suite changed the checkout (git status): {left}"


def kdzoo_main(argv) -> int:
    """``kdzoo.cli.main`` in this process, for tests. The CLI turns Ctrl-C into exit status 130 (what a user
    wants); here the interrupt is raised again, so Ctrl-C during the suite stops pytest within seconds instead
    of failing one test and running on. Every test calls the CLI in-process through this (test_cli_interrupt)."""
    from kdzoo.cli import EXIT_INTERRUPTED, main

    rc = main(list(argv))
    if rc == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    return rc


def unwrapped(text: str) -> str:
    """``text`` without its spaces and line breaks, so a message is found in what the CLI printed whatever the
    width it was wrapped to (engine/terminal.py breaks lines between words, and inside a word longer than a
    line, such as a path): ``unwrapped(message) in unwrapped(printed)``."""
    return "".join(text.split())


@pytest.fixture
def run_cli(tmp_path):
    """Run the kdzoo CLI in a subprocess; returns CompletedProcess."""
    import subprocess

    def run(*args: str, env: dict | None = None, timeout: int = 300):
        return subprocess.run([sys.executable, "-m", "kdzoo", *args], capture_output=True, text=True,
                              cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                              timeout=timeout)
    return run


@pytest.fixture(scope="module")
def plugin_registrations_undone():
    """Registrations made by plugins a test module imports in-process are undone after the module, so a
    later module's `kdzoo list` sees only the built-ins (a plugin's deliberately bad loss would leak)."""
    from kdzoo import registry

    registries = [r for r in vars(registry).values() if isinstance(r, registry.Registry)]
    for r in registries:
        r.load_plugins()          # built-ins registered now, so restoring the snapshot keeps them
    before = [dict(r._entries) for r in registries]
    modules = set(sys.modules)
    yield
    for r, entries in zip(registries, before):
        r._entries.clear()
        r._entries.update(entries)
    for name in set(sys.modules) - modules:
        if name.startswith("kdzoo_plugin_"):
            del sys.modules[name]
