"""Checkpoint I/O: tensors-only loads, and a SHA-256 sidecar beside every checkpoint so corruption is detectable.

The atomic writes every kdzoo file goes through live in ``kdzoo.utils`` (imported here too,
for the importers of ``kdzoo.engine``'s public names).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..utils import atomic_write_bytes, atomic_write_json, atomic_write_text, check_free_space, sha256_bytes


def save_checkpoint(obj: dict, path: str | os.PathLike) -> None:
    """Save with a sha256 of the payload in a sidecar ``.sha256`` so corruption is detectable."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    check_free_space(path, len(data))   # every checkpoint, not only large ones: a full disk is named before a write
    atomic_write_bytes(path, data)
    atomic_write_text(str(path) + ".sha256", sha256_bytes(data) + "\n")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a kdzoo checkpoint (weights_only), verifying its checksum when one was written."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    digest = Path(str(path) + ".sha256")
    if digest.is_file() and digest.read_text().strip() != sha256_bytes(data):
        raise CheckpointError(f"checkpoint {path} does not match its checksum (truncated or corrupt)")
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from exc


__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "load_checkpoint", "save_checkpoint"]
