"""The run store: ``OUT/runs/<config_hash>/`` per run, plus the sweep's plan and recipe copy.

- A run is *done* iff its ``result.json`` parses (its ``status`` says finished,
  diverged or failed). Done runs are never recomputed (``--retry-failed`` re-runs
  failed ones).
- A run folder with a ``config.json`` or ``checkpoint.pt`` but no ``result.json`` was
  interrupted (killed, or stopped by a full disk or another failure of the machine);
  the trainer resumes it from the checkpoint when it runs again.
- ``OUT/runs/<hash>/.lock`` is held with ``fcntl.flock`` while a process trains
  the run, so two ``kdzoo bench`` processes (or Slurm jobs) on one folder never
  train the same run at once (``execution/locks.py``).
- A folder holds the sweep of one recipe (``check_owner``, ``claim``): recipes are
  the same when their names are; a second recipe is refused unless asked to add
  to the folder (``--add-to-out``).
- Every file is written atomically (temporary file + rename).
"""
from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

from ...engine import runfolder
from ...engine.recovery import check_metrics, load_last_good, warn
from ...engine.runfolder import (CHECKPOINT, COMPLETED, CONFIG, FINISHED, INTERRUPTED, LOCK, METRICS, MODEL, PENDING,
                               RUNNING)
from ...errors import ConfigError
from ...utils import atomic_write_json, atomic_write_text, file_sha256, read_jsonl
from . import locks
from .locks import RunLock

PLAN, RECIPE_COPY = "plan.json", "recipe.yaml"
PLAN_LOCK = ".plan.lock"  # held while a sweep checks whose folder this is and writes its plan
ASIDE = ".not-a-folder"    # suffix of a file found where a run folder belongs, moved out of the way
_RUN_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")


class RunStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).absolute()
        self.runs = self.root / "runs"

    def run_dir(self, h: str) -> Path:
        # a run id is a plain name (a config hash): '../x' or '/abs' from a damaged plan cannot leave OUT/runs
        if not isinstance(h, str) or not _RUN_ID.fullmatch(h):
            raise ConfigError(f"run id {h!r} is not a plain name; refusing a path outside {self.runs}")
        return self.runs / h

    # ---------------------------------------------------------------- results
    def result(self, h: str) -> dict[str, Any] | None:
        """The run's result record, or None while it has not ended (see ``runfolder.read_result``)."""
        return runfolder.read_result(self.run_dir(h), run_id=h)

    def is_done(self, h: str, retry_failed: bool = False) -> bool:
        record = self.result(h)
        if record is None:
            return False
        return not (retry_failed and record.get("status") == "failed")

    def status(self, h: str) -> str:
        """finished | diverged | failed | running (locked by a live process) | interrupted (started: it has a
        config.json or a checkpoint, but no result) | pending."""
        record = self.result(h)
        if record is not None:
            return str(record.get("status", "failed"))
        if self.is_locked(h):
            return RUNNING
        folder = self.run_dir(h)
        if (folder / CHECKPOINT).exists() or (folder / CONFIG).exists():   # started, stopped before its result
            return INTERRUPTED
        return PENDING

    def has_model(self, h: str) -> bool:
        return (self.run_dir(h) / MODEL).is_file()

    def write_result(self, h: str, record: dict[str, Any]) -> None:
        runfolder.write_result(self.run_dir(h), record)

    def clear_result(self, h: str) -> None:
        runfolder.clear_result(self.run_dir(h))

    # ------------------------------------------------------------------ locks
    def folder(self, h: str) -> Path:
        """The run's folder, made ready to hold files: a file in its place (damage, a stray copy) is moved
        aside with a warning, so one damaged entry never stops the other runs."""
        folder = self.run_dir(h)
        if self.runs.exists() and not self.runs.is_dir():
            raise ConfigError(f"{self.runs} is a file, not the run store's folder; move it away and run the "
                              f"same command again")
        if folder.exists() and not folder.is_dir():
            aside = folder.with_name(f"{folder.name}{ASIDE}")
            os.replace(folder, aside)
            warn(f"{folder} is a file, not a run folder; moved to {aside.name}, and the run is trained")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def lock(self, h: str, *, blocking: bool = False, note: str = "") -> RunLock | None:
        """Take the run's lock; None when another process holds it (and ``blocking`` is False)."""
        return locks.take(self.folder(h) / LOCK, blocking, note)

    def is_locked(self, h: str) -> bool:
        return locks.is_held(self.run_dir(h) / LOCK)

    def wait_unlocked(self, h: str, **kw: Any) -> str | None:
        """Wait until no other process holds the run's lock (None), or give up on a holder that is stopped or
        gone and say why (see ``locks.wait_free`` for the keywords)."""
        return locks.wait_free(self.run_dir(h) / LOCK, **kw)

    # ---------------------------------------------------------- plan / recipe
    def owner(self) -> str | None:
        """The name of the recipe whose sweep this folder holds (its plan.json's), None when it holds none."""
        plan = self.read_plan()
        name = plan.get("recipe") if isinstance(plan, dict) else None
        return name if isinstance(name, str) else None

    def check_owner(self, name: str, text: str, add: bool = False) -> str | None:
        """Refuse (ConfigError, one line) a recipe other than the one whose sweep this folder holds, unless
        ``add``. Recipes are the same when their names are (``name:``, by default the file's name): an
        edited recipe stays the same recipe, its unchanged runs reused. Returns a note when it was edited."""
        owner = self.owner()
        if owner is not None and owner != name and not add:
            raise ConfigError(f"{self.root} holds the sweep of recipe '{owner}', not '{name}': give this one "
                              f"another --out, or add --add-to-out to run it here (the folder's plan and "
                              f"leaderboard then show '{name}'; the runs of '{owner}' stay in runs/)")
        try:
            before = (self.root / RECIPE_COPY).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if owner == name and before != text:
            return (f"note: recipe '{name}' changed since {self.root} was last planned; its plan and leaderboard "
                    f"follow this version (runs that did not change are reused)")
        return None

    def claim(self, name: str, text: str, plan_dict: dict[str, Any], add: bool = False) -> None:
        """Write the recipe's copy and plan, checking under the folder's lock that no other recipe took the
        folder since ``check_owner`` (two sweeps started together: the second is refused)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locks.take(self.root / PLAN_LOCK, blocking=True, note=name):
            self.check_owner(name, text, add)
            self.write_recipe(text)
            self.write_plan(plan_dict)

    def write_plan(self, plan_dict: dict[str, Any]) -> None:
        atomic_write_json(self.root / PLAN, plan_dict)

    def read_plan(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / PLAN).read_text())
        except (OSError, ValueError):
            return None

    def write_recipe(self, text: str) -> None:
        atomic_write_text(self.root / RECIPE_COPY, text)


def _metrics_problem(path: Path, epochs: int) -> str | None:
    """None when ``path`` holds exactly epochs 1..``epochs`` as JSON lines, else what is wrong."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None if epochs == 0 else "is missing"
    records, bad = read_jsonl(data)
    try:
        seen = [r["epoch"] for r in records]
    except (KeyError, TypeError):
        bad = bad or 0
    if bad is not None:
        return "has a line that is not a JSON epoch record (truncated or corrupt)"
    if seen != list(range(1, epochs + 1)):
        return f"holds epochs {seen[:3]}{'...' if len(seen) > 3 else ''} but the run ended after {epochs}"
    return None


def check_done_run(run_dir: str | os.PathLike, record: dict, log: Callable[[str], None] | None = None,
                   depends: dict[str, str] | None = None) -> str | None:
    """Check the files of a run whose ``result.json`` says it ended; repair what can be repaired.

    - ``metrics.jsonl`` truncated, corrupt or missing: rewritten from the final checkpoint.
    - ``model.pt`` of a finished run missing, truncated (not a complete zip archive) or not
      the file the run wrote (another SHA-256 than its result records), or ``metrics.jsonl``
      bad with no final checkpoint to rebuild it from: returns what was found, and the
      caller should drop the result so the run is finished again (the trainer then resumes
      from its last good checkpoint).
    - a file the run depends on (``depends``, name -> SHA-256 now: its teacher's weights)
      differs from the one its result records: returns it too; the run is then trained
      again, since its checkpoints were trained on the other file.

    Returns None when the run's files are fine (or were repaired). Reads ``metrics.jsonl``
    and hashes ``model.pt`` (once per file version in a process); loads a checkpoint only to repair.
    """
    status = record.get("status")
    if status not in COMPLETED:
        return None
    run_dir = Path(run_dir)
    problem = None
    recorded = record.get("depends") or {}
    changed = [k for k, v in (depends or {}).items() if recorded.get(k) not in (None, v)]
    if changed:
        problem = (f"{run_dir}: the {changed[0]} file it was trained with has changed (SHA-256 "
                   f"{str(recorded[changed[0]])[:12]}, now {depends[changed[0]][:12]})")
        warn(f"{problem}; the run is trained again", log)
        return problem
    if status == FINISHED:
        model = run_dir / MODEL
        if not model.is_file() or not zipfile.is_zipfile(model):
            problem = f"{model} is {'truncated or corrupt' if model.is_file() else 'missing'}"
        elif record.get("model_sha256") not in (None, file_sha256(model)):
            problem = f"{model} is not the file this run wrote (its SHA-256 differs from the result's)"
    epochs = int(record.get("epochs") or 0)
    bad = _metrics_problem(run_dir / METRICS, epochs)
    if bad and problem is None:
        ckpt = load_last_good(run_dir / CHECKPOINT, log=log)
        if ckpt is not None and int(ckpt["epoch"]) == epochs:
            check_metrics(run_dir, list(ckpt.get("metrics", [])), log=log)
        else:
            problem = f"{run_dir / METRICS} {bad} and no checkpoint of epoch {epochs} is left to rebuild it"
    if problem:
        warn(f"{problem}; the run is finished again from its last good checkpoint", log)
    return problem


__all__ = ["RunLock", "RunStore", "check_done_run"]
