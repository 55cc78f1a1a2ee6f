"""Atomic file writes: a temporary file in the target's folder, flushed to disk, renamed over the target.

A reader (or a run resumed after a crash) sees either the old complete file or the new complete
one, never a partial file. A kill can leave a ``.NAME.XXXX.tmp`` behind; nothing reads those.

Storage failures become a ``StorageError`` (an ``OSError`` and a ``KdzooError``) whose one-line
message names the file: before a large write the free space is checked, so a full disk is
reported before any byte is written, and an ``ENOSPC`` or ``EIO`` during the write says which
file it hit. Callers treat a ``StorageError`` as transient: nothing about the run was wrong.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

from ..errors import StorageError
from .jsonl import json_text

LARGE_WRITE = 1 << 20   # writes of this many bytes or more check the free space first
SPARE = 1 << 20         # kept free beyond the file itself (the filesystem's own bookkeeping)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Raise ``StorageError`` (ENOSPC) when the filesystem holding ``path`` has no room for ``nbytes`` more."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:   # no usage figure (some network mounts): the write itself will tell
        return
    if free < nbytes + SPARE:
        raise StorageError(errno.ENOSPC, f"not enough free space to write {path}: it needs {_mb(nbytes)}, "
                                         f"{_mb(free)} are free on that filesystem", str(path))


def _storage_error(exc: OSError, path: Path) -> StorageError:
    what = os.strerror(exc.errno) if exc.errno else (exc.strerror or type(exc).__name__)
    return StorageError(exc.errno or errno.EIO, f"cannot write {path}: {what}", str(path))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any], size: int = 0) -> None:
    """Write ``path`` atomically by calling ``write(file)``; ``size``: the expected bytes (free-space check)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if size >= LARGE_WRITE:
        check_free_space(path, size)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and not exc.filename:
            raise _storage_error(exc, path) from exc   # "No space left on device" alone names no file
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), size=len(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, indent=2, sort_keys=True, default=str) + "\n")


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` a complete copy of ``src`` in one rename (a hard link where the filesystem allows)."""
    src, dst = Path(src), Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            check_free_space(dst, src.stat().st_size)
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError) and not exc.filename:
            raise _storage_error(exc, dst) from exc
        raise


__all__ = ["LARGE_WRITE", "atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "check_free_space", "link_or_copy"]
