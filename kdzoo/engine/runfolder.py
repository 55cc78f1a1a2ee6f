"""The run folder: every file one run leaves on disk and every status it can end in, named once.

    <run>/config.json        the run's settings (``RunSpec.to_dict``), written before training starts
    <run>/checkpoint.pt      the latest epoch (+ ``checkpoint.prev.pt`` and ``.sha256`` sidecars, see recovery.py)
    <run>/metrics.jsonl      one JSON line per finished epoch, derived from the checkpoint
    <run>/model.pt           the evaluated weights of a finished run (the moving average when one is kept)
    <run>/result.json        the result record; the run is *done* iff it parses with an ended status
    <run>/.lock              held (flock) while a process trains the run, see bench/execution/store.py
    <run>/error.log          the traceback of a run that failed (bench/execution/launch.py)
    <run>/transfer-D.json    a transfer evaluation of the run's student on dataset D (kdzoo transfer)
    <run>/prepared.json      the record of a loss's preparation stage (what it made or reused, its queries)
    <run>/prepared-NAME      an artifact of that stage (e.g. prepared-samples.png, MEKD's generated samples)

The engine writes the checkpoint, metrics and preparation files (engine/prepare.py), bench/execution/run.py
the config, weights and result; bench/execution/store.py, the CLI and apps/transfer.py read them through the
functions here.
See docs/design.md ("The run folder").

A folder belongs to the settings in its config.json: ``check_run_folder`` refuses to resume
or rewrite it with others (resuming a checkpoint under other settings would silently mix two
runs, e.g. a second epoch trained at the end of the first run's cosine schedule), naming the
settings that differ and touching nothing. A config.json that cannot be read is damage, not
another run's settings: it is written again (with a warning).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, RecoveryWarning, differences
from ..utils import atomic_write_json, sha256_bytes

CONFIG = "config.json"
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
MODEL = "model.pt"
RESULT = "result.json"
LOCK = ".lock"
PREPARED = "prepared.json"
ERROR_LOG = "error.log"

RECORD_DIGEST = "record_sha256"   # result.json's own digest (see write_result)

FINISHED, DIVERGED, FAILED = "finished", "diverged", "failed"
PRUNED = "pruned"                      # stopped early by the trainer's epoch hook (a tuning trial's pruner)
ENDED = (FINISHED, DIVERGED, FAILED, PRUNED)   # a result.json with one of these marks the run done
COMPLETED = (FINISHED, DIVERGED, PRUNED)       # ended without an error: a sweep of only these succeeded
# a run without a result: still training (its lock is held), stopped with a checkpoint, or not started
RUNNING, INTERRUPTED, PENDING = "running", "interrupted", "pending"


def transfer_file(dataset: str) -> str:
    return f"transfer-{dataset}.json"


def prepared_file(name: str) -> str:
    """The run-folder name of a preparation stage's artifact ``name`` (e.g. ``samples.png``)."""
    return f"prepared-{name}"


def write_config(run_dir: str | os.PathLike, config: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / CONFIG, config)


def read_config(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The run's settings, or None when the folder has no readable config.json."""
    try:
        config = json.loads((Path(run_dir) / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _plain(x: Any) -> Any:
    """A JSON value as any writer reads it back: tuples as lists, a non-finite number as null."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)


def record_digest(record: dict[str, Any]) -> str:
    """SHA-256 of a result record without its own digest: an edit of the file after the run wrote it shows."""
    body = _plain({k: v for k, v in record.items() if k != RECORD_DIGEST})
    return sha256_bytes(json.dumps(body, sort_keys=True).encode())


def write_result(run_dir: str | os.PathLike, record: dict[str, Any]) -> None:
    record = {k: v for k, v in record.items() if k != RECORD_DIGEST}
    record[RECORD_DIGEST] = record_digest(record)
    atomic_write_json(Path(run_dir) / RESULT, record)


def read_result(run_dir: str | os.PathLike, run_id: str | None = None) -> dict[str, Any] | None:
    """The run's result record, or None while it has not ended (missing or unreadable file).

    A result.json that exists but does not parse as a record with an ended status
    (truncated or corrupt), that was changed after the run wrote it (its digest does not
    match), or that belongs to another run than ``run_id`` (copied from another folder)
    is reported with a RecoveryWarning; the run counts as not done, so the next sweep
    finishes it again from its checkpoint. (Records written before kdzoo kept a digest
    are taken as they are.)
    """
    path = Path(run_dir) / RESULT
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:
        record, problem = None, f"cannot be read ({type(exc).__name__}; truncated or corrupt)"
    else:
        problem = "holds no result record (truncated or corrupt)"
    if isinstance(record, dict) and record.get("status") in ENDED:
        problem = _record_problem(record, run_id)
        if problem is None:
            return record
    warnings.warn(f"{path} {problem}; the run is not done and will be finished again from its checkpoint",
                  RecoveryWarning, stacklevel=2)
    return None


def _record_problem(record: dict[str, Any], run_id: str | None) -> str | None:
    if RECORD_DIGEST in record and record[RECORD_DIGEST] != record_digest(record):
        return "was changed after the run wrote it (its digest does not match)"
    if run_id is not None and record.get("config_hash") != run_id:
        owner = record.get("config_hash")
        return f"belongs to run {owner}, not to run {run_id}" if owner else f"names no run (not run {run_id}'s)"
    return None


def clear_result(run_dir: str | os.PathLike) -> None:
    try:
        (Path(run_dir) / RESULT).unlink()
    except FileNotFoundError:
        pass


class RunFolderMismatch(ConfigError):
    """A run folder holds a run made with other settings than the ones asked for."""


def check_run_folder(run_dir: str | os.PathLike, wanted: dict[str, Any],
                     identity: Callable[[dict[str, Any]], dict[str, Any]], hint: str) -> None:
    """Raise ``RunFolderMismatch`` when ``run_dir/config.json`` records other settings than ``wanted``.

    ``identity`` maps a recorded config to the settings that define the run (what its hash
    covers: not the device, not defaults that are left out). ``hint`` ends the message with
    what the user can do instead.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return
    try:
        old = identity(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
        # damaged, not another run's: the caller writes it again, and a checkpoint in the folder is
        # resumed only if it names this run (engine.recovery.state_problem)
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"{path} cannot be read as a run's settings ({why}; truncated or corrupt); it is "
                      f"written again", RecoveryWarning, stacklevel=2)
        return
    diff = differences(old, identity(wanted))
    if diff:
        raise RunFolderMismatch(f"{run_dir} holds a run made with other settings ({diff}); it is left as it is: "
                                f"{hint}")


__all__ = ["CHECKPOINT", "COMPLETED", "CONFIG", "DIVERGED", "ENDED", "ERROR_LOG", "FAILED", "FINISHED", "INTERRUPTED",
           "LOCK", "METRICS", "MODEL", "PENDING", "PRUNED", "RECORD_DIGEST", "RESULT", "RUNNING", "RunFolderMismatch",
           "check_run_folder", "clear_result", "differences", "read_config", "read_result", "record_digest",
           "transfer_file", "write_config", "write_result"]
