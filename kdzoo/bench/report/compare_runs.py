"""The input of ``kdzoo compare``: the finished student runs of a bench output folder (or its
``leaderboard.csv``), checked line by line, and the metric its plan ranks (see compare.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ...errors import ConfigError
from ..execution.store import PLAN
from ..recipe.types import name_problem
from .leaderboard import CSV

KEYS = ["teacher", "student", "label", "access"]


def load_runs(path: str | Path, metric: str | None = None,
              notes: list[str] | None = None) -> tuple[pd.DataFrame, str]:
    """Finished student runs of a bench output folder or a ``leaderboard.csv``, and the metric to compare.

    Bad input is refused in one line naming the CSV line: no finished student run, a name that
    would break the table, a value that is not a finite number, one seed given twice with two
    values. Exact copies of a row count once (a note is added to ``notes``)."""
    p = Path(path)
    csv = p / CSV if p.is_dir() else p
    if not csv.is_file():
        where = f"{p} holds no leaderboard.csv" if p.is_dir() else f"no such file or folder: {p}"
        raise ConfigError(f"{where}; give a kdzoo bench output folder or its leaderboard.csv")
    try:
        df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{csv} cannot be read as a leaderboard ({type(exc).__name__})") from exc
    missing = [c for c in KEYS + ["status", "role"] if c not in df.columns]
    if missing:
        raise ConfigError(f"{csv} is not a kdzoo leaderboard.csv (no column {', '.join(missing)})")
    if metric is None:
        metric = _plan_metric(csv.parent) or "top1"
    if metric not in df.columns:
        raise ConfigError(f"{csv} has no column {metric!r} (try --metric top1)")
    df["line"] = df.index + 2            # the CSV's own line numbers (line 1 is the header), for messages
    df = df[(df.role == "student") & (df.status == "finished")].copy()
    if df.empty:
        raise ConfigError(f"{csv} holds no finished student run: nothing to compare")
    for k in KEYS:
        df[k] = df[k].astype(str)
    _check_rows(df, csv, metric)
    return _collapse_duplicates(df, csv, metric, notes), metric


def _who(row: pd.Series) -> str:
    seed = f" seed {row['seed']}" if "seed" in row.index else ""
    return f"{row['teacher']}→{row['student']} {row['label']} ({row['access']}){seed}"


def _check_rows(df: pd.DataFrame, csv: Path, metric: str) -> None:
    """Names and values a comparison can trust, or one line naming the first row that is not."""
    for _, row in df.iterrows():
        for k in KEYS:
            if name_problem(row[k]):
                raise ConfigError(f"{csv} line {row['line']}: {k} {row[k]!r} {name_problem(row[k])}")
        raw = row[metric]
        if pd.isna(raw):
            raise ConfigError(f"{csv} line {row['line']}: {metric} of {_who(row)} is empty")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{csv} line {row['line']}: {metric} '{raw}' of {_who(row)} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{csv} line {row['line']}: {metric} '{raw}' of {_who(row)} is not a finite number")
    df[metric] = pd.to_numeric(df[metric])


def _collapse_duplicates(df: pd.DataFrame, csv: Path, metric: str, notes: list[str] | None) -> pd.DataFrame:
    """A (pair, method, access, seed) counts once: copies of one row are collapsed (with a note), rows that
    disagree are refused. Counted twice they would be extra seeds and shrink every interval."""
    if "seed" not in df.columns:
        return df
    key = KEYS + ["seed"]
    dup = df[df.duplicated(key, keep=False)]
    if dup.empty:
        return df
    for _, g in dup.groupby(key, sort=False):
        if g[metric].nunique() > 1:
            lines = ", ".join(str(n) for n in g["line"])
            values = ", ".join(f"{v:g}" for v in g[metric])
            raise ConfigError(f"{csv} lines {lines}: {_who(g.iloc[0])} appears {len(g)} times with different "
                              f"{metric} ({values}); keep one row per seed")
    extra = int(df.duplicated(key).sum())
    if notes is not None:
        notes.append(f"{csv}: {extra} duplicate row{'s' if extra > 1 else ''} (same pair, method, access and seed) "
                     f"counted once")
    return df.drop_duplicates(key)


def _plan_metric(folder: Path) -> str | None:
    try:
        return json.loads((folder / PLAN).read_text()).get("metric")
    except (OSError, ValueError, AttributeError):
        return None


__all__ = ["KEYS", "load_runs"]
