"""Atomic file writes and checkpoint I/O.

Every file kdzoo writes goes to a temporary name in the same folder, is
flushed to disk and then renamed over the target, so a reader (or a resumed
run after a crash) sees either the old complete file or the new complete one.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN: no test accuracy yet, a diverged loss) as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def json_text(obj: Any, **kw: Any) -> str:
    """Strict JSON, which any parser reads: null where Python would write NaN or Infinity."""
    return json.dumps(strict(obj), allow_nan=False, **kw)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    """Save with a sha256 of the payload in a sidecar ``.sha256`` so corruption is detectable."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_text(str(path) + ".sha256", hashlib.sha256(data).hexdigest() + "\n")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a kdzoo checkpoint (weights_only), verifying its checksum when one was written."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    digest = Path(str(path) + ".sha256")
    if digest.is_file() and digest.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise CheckpointError(f"checkpoint {path} does not match its checksum (truncated or corrupt)")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
