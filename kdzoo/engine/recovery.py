"""Crash-safe checkpoints: keep the previous good one, detect corruption, resume from the last good state.

A run folder holds ``checkpoint.pt`` (the latest epoch) and ``checkpoint.prev.pt``
(the epoch before), each with a ``.sha256`` sidecar. Saving goes in an order
where, whatever instant the process is killed at, at least one of the two is
complete and matches its checksum:

1. ``checkpoint.prev.pt.sha256`` <- digest of the current ``checkpoint.pt``
2. ``checkpoint.prev.pt``        <- hard link (or copy) of the current ``checkpoint.pt``
3. ``checkpoint.pt``             <- the new state (temporary file + rename)
4. ``checkpoint.pt.sha256``      <- digest of the new state

Between steps 1 and 2 the current checkpoint is still good; between 3 and 4
the previous one is. Loading tries ``checkpoint.pt``, then ``checkpoint.prev.pt``,
then gives up (training restarts from scratch); every file found unusable is
reported with a ``RecoveryWarning`` naming it and what was wrong.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

from ..errors import CheckpointError, RecoveryWarning
from ..utils import atomic_write_bytes, atomic_write_text, jsonl_text, link_or_copy, read_jsonl, sha256_bytes
from .checkpoint import load_checkpoint, save_checkpoint
from .runfolder import CHECKPOINT, METRICS

PREV_SUFFIX = ".prev"


def warn(message: str, log: Callable[[str], None] | None = None) -> None:
    """Report a recovery as a ``RecoveryWarning`` (shown on stderr) and also to ``log`` if given."""
    warnings.warn(message, RecoveryWarning, stacklevel=2)  # located at the caller: repeats print once
    if log is not None:
        try:
            log(f"warning: {message}")
        except Exception:  # a broken log sink must not stop the recovery
            pass


def prev_path(path: str | os.PathLike) -> Path:
    """``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    p = Path(path)
    return p.with_name(p.stem + PREV_SUFFIX + p.suffix)


def _sidecar(path: Path) -> Path:
    return Path(str(path) + ".sha256")


def save_checkpoint_keep_previous(obj: dict, path: str | os.PathLike) -> None:
    """``save_checkpoint`` that first keeps the current checkpoint as ``checkpoint.prev.pt``."""
    path = Path(path)
    prev = prev_path(path)
    if path.is_file() and path.stat().st_size > 0:
        digest = sha256_bytes(path.read_bytes())
        sidecar = _sidecar(path)
        if not sidecar.is_file() or sidecar.read_text().strip() == digest:  # never replace a good prev by a bad one
            atomic_write_text(_sidecar(prev), digest + "\n")
            link_or_copy(path, prev)
    save_checkpoint(obj, path)


def verify(path: Path) -> str | None:
    """None when ``path`` is complete and matches its checksum, else what is wrong with it."""
    if not path.is_file():
        return "is missing"
    size = path.stat().st_size
    if size == 0:
        return "is empty (0 bytes)"
    digest = _sidecar(path)
    if digest.is_file():
        want = digest.read_text().strip()
        if want != sha256_bytes(path.read_bytes()):
            return f"does not match its checksum ({size} bytes; truncated or corrupt)"
    return None


Check = Callable[[dict], "str | None"]   # why a loaded checkpoint cannot serve this run (None: it can)


def load_last_good(path: str | os.PathLike, map_location: Any = "cpu",
                   log: Callable[[str], None] | None = None, check: Check | None = None) -> dict | None:
    """The newest good checkpoint among ``path`` and its ``.prev`` fallback, or None (start from scratch).

    Files that exist but cannot be used are reported with a warning. A checkpoint
    must be a dict holding at least ``epoch`` and ``model``, and pass ``check``
    (see ``state_problem``: it belongs to this run and fits its models).
    """
    return _load_last_good(Path(path), map_location, log, check)[0]


def state_problem(ckpt: dict, run: str | None, depends: dict[str, str], modules: dict[str, Any]) -> str | None:
    """Why a training checkpoint cannot resume run ``run`` (None: it can).

    It must name this run (a checkpoint copied from another run folder is refused), have been
    trained on the same files (``depends``: name -> SHA-256, e.g. the teacher's weights) and hold
    the state of each of ``modules`` (checkpoint key -> module) with the same names and shapes.
    Checkpoints written before kdzoo recorded these are checked for what they hold."""
    if run and ckpt.get("run") not in (None, run):
        return f"belongs to run {ckpt['run']}, not to run {run}"
    recorded = ckpt.get("depends") or {}
    for name, digest in depends.items():
        if recorded.get(name) not in (None, digest):
            return (f"was trained with another {name} file (SHA-256 {str(recorded[name])[:12]}, "
                    f"now {digest[:12]})")
    for key, module in modules.items():
        problem = fit_problem(ckpt.get(key), module) if module is not None else None
        if problem:
            return f"does not fit the {key} ({problem})"
    return None


def fit_problem(saved: Any, module: Any) -> str | None:
    """None when the state dict ``saved`` loads into ``module`` (same names and shapes), else the first
    names that are missing or unexpected, or the first shape that differs."""
    want = module.state_dict()
    if not want and not saved:
        return None
    if not isinstance(saved, dict):
        return "no saved state"
    missing, unexpected = [k for k in want if k not in saved], [k for k in saved if k not in want]
    if missing or unexpected:
        parts = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        return "; ".join(parts)
    for k, v in want.items():
        shape = tuple(getattr(saved[k], "shape", ()))
        if shape != tuple(v.shape):
            return f"{k} is {shape} in the file, {tuple(v.shape)} in the model"
    return None


def _load_last_good(path: Path, map_location: Any, log: Callable[[str], None] | None,
                    check: Check | None = None) -> tuple[dict | None, bool]:
    """(checkpoint or None, whether something was found unusable and reported)."""
    problems: list[str] = []
    for candidate in (path, prev_path(path)):
        if not candidate.exists():
            if candidate == path and prev_path(path).exists():
                problems.append(f"{candidate} is missing")
            continue
        problem = verify(candidate)
        ckpt = None
        if problem is None:
            try:
                ckpt = load_checkpoint(candidate, map_location=map_location)
            except CheckpointError as exc:
                problem = f"cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            else:
                if not isinstance(ckpt, dict) or "epoch" not in ckpt or "model" not in ckpt:
                    problem, ckpt = "is not a kdzoo training checkpoint", None
                elif check is not None and (problem := check(ckpt)) is not None:
                    ckpt = None
        if ckpt is not None:
            if problems:
                warn(f"{'; '.join(problems)}; resuming from {candidate.name} (epoch {ckpt['epoch']})", log)
            return ckpt, bool(problems)
        problems.append(f"{candidate} {problem}")
    if problems:
        warn(f"{'; '.join(problems)}; no good checkpoint left, training restarts from scratch", log)
    return None, bool(problems)


def metrics_text(records: list[dict]) -> str:
    """metrics.jsonl: one strict JSON line per epoch (null, not NaN)."""
    return jsonl_text(records)


def check_metrics(run_dir: str | os.PathLike, records: list[dict], name: str = METRICS,
                  log: Callable[[str], None] | None = None) -> None:
    """Make ``metrics.jsonl`` agree with the checkpoint's records; rewrite it (with a warning) if it does not.

    The checkpoint is the source of truth: the file is derived from it, so a
    truncated, corrupt or stale file is simply written again.
    """
    path = Path(run_dir) / name
    want = metrics_text(records)
    try:
        have = path.read_bytes()
    except FileNotFoundError:
        have = None
    if have is not None and have == want.encode("utf-8"):
        return
    if have is None:
        problem = "is missing"
    else:
        problem = _describe_jsonl(have, len(records))
    if records or have:
        warn(f"{path} {problem}; rewritten from the checkpoint ({len(records)} epochs)", log)
    atomic_write_bytes(path, want.encode("utf-8"))


def _describe_jsonl(data: bytes, expected: int) -> str:
    lines, bad = read_jsonl(data)
    if bad is not None:
        return f"has a line that is not JSON (line {bad}; truncated or corrupt)"
    if len(lines) != expected:
        return f"has {len(lines)} epochs but the checkpoint has {expected}"
    return "differs from the checkpoint's records"


def resume_state(run_dir: str | os.PathLike, name: str = CHECKPOINT, map_location: Any = "cpu",
                 log: Callable[[str], None] | None = None, metrics_name: str = METRICS,
                 check: Check | None = None) -> dict | None:
    """Load the last good checkpoint of a run folder and repair ``metrics.jsonl`` to match it.

    Returns None when training must start from scratch (nothing saved, or nothing usable).
    """
    run_dir = Path(run_dir)
    ckpt, reported = _load_last_good(run_dir / name, map_location, log, check)
    if ckpt is None:
        if (run_dir / metrics_name).exists():
            (run_dir / metrics_name).unlink()  # stale: it describes a state that no longer exists
        return None
    records = list(ckpt.get("metrics", []))
    if reported:
        # the fallback was reported: the file describes epochs past it and is rewritten without a second warning
        atomic_write_bytes(run_dir / metrics_name, metrics_text(records).encode("utf-8"))
    else:
        check_metrics(run_dir, records, metrics_name, log)
    return ckpt
