"""Content digests (SHA-256) of byte strings and files."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 22


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The file's SHA-256 (hex), read once per (path, size, modification time) in this process:
    a sweep names the same teacher file for every one of its runs."""
    p = Path(path).resolve()
    st = p.stat()
    return _file_sha256(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["file_sha256", "sha256_bytes"]
