"""The files of ``OUT/tune/``, named once: what was searched, every trial, what was chosen, the final runs.

    OUT/tune/studies/<study>.journal   Optuna's storage, one journal per study (search.py)
    OUT/tune/studies.json              each study: name, method label, the rows it answers, its space, trial 0
    OUT/tune/trials.csv                one row per trial: state, value, epochs, run hash, values (rewritten as it goes)
    OUT/tune/chosen.json               per study: the chosen trial, its validation top-1 and its values
    OUT/tune/plan.json                 the tuned final runs (a bench plan: its rows carry the recipe's labels)

They are plain JSON and CSV, so the tuned leaderboard is rebuilt without Optuna (``kdzoo leaderboard OUT``).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ...engine.runfolder import LOCK   # the tuning folder is locked like a run folder
from ...utils import atomic_write_json, atomic_write_text
from ..execution.store import PLAN     # OUT/tune/plan.json: the final runs' plan, read like the sweep's
from .search import RUN, STATUS
from .studies import Study

TUNE_DIR = "tune"
STUDIES, TRIALS, CHOSEN = "studies.json", "trials.csv", "chosen.json"
TRIAL_COLUMNS = ["study", "label", "number", "state", "status", "value", "epochs", "last_val_top1", "run", "params"]


def folder(out: str | Path) -> Path:
    return Path(out).absolute() / TUNE_DIR


def write_studies(where: Path, studies: list[Study], trials: int, classes: int) -> None:
    """``classes``: the dataset's, for chance (100 / classes: what a diverged trial scores) and collapse."""
    atomic_write_json(where / STUDIES, {"trials": trials, "classes": classes, "chance": 100.0 / classes, "studies": [
        {"name": s.name, "label": s.label, "rows": [list(r) for r in s.rows], "file": s.file,
         "space": {k: repr(p) for k, p in s.space.items()}, "start": s.start} for s in studies]})


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_trials(where: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, TRIAL_COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({**r, "params": json.dumps(r["params"], sort_keys=True)})
    atomic_write_text(where / TRIALS, buf.getvalue())


def trial_rows(handle: Any, study: Study) -> list[dict[str, Any]]:
    """One dict per trial of ``study`` (an opened ``search.Handle``), in trial order."""
    rows = []
    for t in sorted(handle.study.get_trials(deepcopy=False), key=lambda t: t.number):
        iv = t.intermediate_values
        last = max(iv) if iv else 0
        rows.append({"study": study.name, "label": study.label, "number": t.number, "state": t.state.name,
                     "status": t.user_attrs.get(STATUS, ""), "value": t.value if t.value is not None else "",
                     "epochs": last, "last_val_top1": iv[last] if iv else "", "run": t.user_attrs.get(RUN, ""),
                     "params": dict(t.params)})
    return rows


__all__ = ["CHOSEN", "LOCK", "PLAN", "STUDIES", "TRIALS", "TRIAL_COLUMNS", "TUNE_DIR", "folder", "read_json",
           "trial_rows", "write_studies", "write_trials"]
