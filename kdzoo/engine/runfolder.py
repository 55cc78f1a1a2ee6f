"""A run folder belongs to one set of settings: resuming it with others is refused.

A folder's ``config.json`` records what it was started with. Resuming a
checkpoint under different settings would silently mix two runs (e.g. a
second epoch trained at the end of the first run's cosine schedule), so the
differing settings are named and nothing in the folder is touched.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError

CONFIG = "config.json"


class RunFolderMismatch(ConfigError):
    """A run folder holds a run made with other settings than the ones asked for."""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 1}} -> {"train.epochs": 1}, so differences can be named one setting at a time."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> str:
    """"train.epochs 1 -> 2, lr 0.1 -> 0.05" for the settings whose values differ ("" when none do)."""
    a, b = flatten(old), flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k, "(unset)") != b.get(k, "(unset)")]
    parts = [f"{k.removeprefix('train.')} {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys[:limit]]
    return ", ".join(parts) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_run_folder(run_dir: str | Path, wanted: dict[str, Any],
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
    except (ValueError, TypeError, KeyError) as exc:
        raise RunFolderMismatch(f"{run_dir} holds a config.json kdzoo cannot read as a run's settings "
                                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {hint}") from None
    diff = differences(old, identity(wanted))
    if diff:
        raise RunFolderMismatch(f"{run_dir} holds a run made with other settings ({diff}); it is left as it is: "
                                f"{hint}")
