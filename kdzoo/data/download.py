"""``--download``: fetch Fashion-MNIST with torchvision's downloader, all or nothing.

The files go to a temporary folder first and are moved into ``<root>/fashion-mnist/``
only when all four arrived and match their checksums, so an offline attempt
leaves nothing behind (no empty ``FashionMNIST/raw/``). ``<root>`` is
``--data-root``, else ``$KDZOO_DATA``, else kdzoo's user data folder, which is
also searched for datasets. ``$KDZOO_FASHION_MNIST_MIRRORS`` (comma-separated
URLs) replaces torchvision's mirror list, so tests can point it at an
unreachable local address instead of the network.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import DataNotFoundError

MIRRORS_ENV = "KDZOO_FASHION_MNIST_MIRRORS"
APT_HINT = "on Debian/Ubuntu: apt-get install dataset-fashion-mnist"


def user_data_dir() -> Path:
    """Where ``--download`` puts datasets when neither --data-root nor $KDZOO_DATA is set."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "kdzoo" / "data"


def download_root(data_root: str | os.PathLike | None) -> Path:
    return Path(data_root or os.environ.get("KDZOO_DATA") or user_data_dir()).expanduser()


def download_fashion_mnist(data_root: str | os.PathLike | None, files: list[str]) -> Path:
    """Download the four IDX files into ``<root>/fashion-mnist/``; return that folder.

    Raises ``DataNotFoundError`` (one line, both offline remedies) when any file cannot be fetched.
    """
    from torchvision.datasets import FashionMNIST

    mirrors = [m.strip() for m in os.environ.get(MIRRORS_ENV, "").split(",") if m.strip()] or FashionMNIST.mirrors
    mirrors = [m if m.endswith("/") else m + "/" for m in mirrors]
    dest = download_root(data_root) / "fashion-mnist"
    tmp = Path(tempfile.mkdtemp(prefix="kdzoo-download-"))
    try:
        source = type("_FashionMNIST", (FashionMNIST,), {"mirrors": mirrors})
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision prints every attempt
            source(str(tmp), download=True)
        raw = tmp / "FashionMNIST" / "raw"
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.move(str(raw / name), str(dest / name))
    except Exception as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if "Error" in line or "error" in line
                       or "refused" in line), type(exc).__name__)
        if "got:" in str(exc):  # torchvision: "Tried MIRROR, got:\n<reason>": keep the reason
            reason = str(exc).split("got:", 1)[1].strip().splitlines()[0]
        raise DataNotFoundError(f"could not download Fashion-MNIST from {', '.join(mirrors)} ({reason}); without "
                                f"a network, {APT_HINT}, or put the four IDX files in <root>/fashion-mnist/ "
                                f"and pass --data-root <root>") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"downloaded Fashion-MNIST to {dest}")
    return dest
