"""The one place the tuned leaderboard takes its statistics from: ``kdzoo.stats``, through the bench leaderboard's
summary (one family per pair, docs/statistics.md).

Per (pair, label, access) of a plan's runs: mean ± std over the seeds that did not collapse, the differences
to the plan's ``ce`` and to its ``kd`` (at the same access) with their simultaneous 95% intervals from one
family and the verdicts read off them, the rank interval, and the collapsed seeds named. The report reads
only the columns named in ``COLUMNS``; a change of procedure is a change here.
"""
from __future__ import annotations

import pandas as pd

from ...stats import collapse_threshold
from ...stats import paired_ci as _paired_ci
from ...stats.collapse import collapsed
from ..plan import Plan
from ..report import leaderboard

COLUMNS = ["teacher", "student", "label", "access", "n_seeds", "n_finished", "n_kept", "n_collapsed", "collapsed",
           "mean", "std", "delta_ce", "delta_ce_low", "delta_ce_high", "delta_ce_n", "vs_ce", "delta_kd", "delta_kd_low",
           "delta_kd_high", "delta_kd_n", "vs_kd", "rank_shown"]


def summary(plan: Plan, rows: pd.DataFrame, classes: int | None) -> pd.DataFrame:
    """The table above for ``plan``'s runs (``leaderboard.rows``); empty, with these columns, without rows."""
    s = leaderboard.summarize(plan, rows, classes) if len(rows) else pd.DataFrame()
    if s.empty:
        return pd.DataFrame(columns=COLUMNS)
    return s[COLUMNS].reset_index(drop=True)


def paired(diffs: list[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of per-seed differences with a 95% t interval (one comparison; NaN ends for n < 2)."""
    return _paired_ci(diffs)


def collapse_limit(classes: int | None) -> float:
    """The top-1 (%) at or below which a run (or a trial) counts as collapsed."""
    return collapse_threshold(classes)


def is_collapsed(value: float, status: str, limit: float) -> bool:
    return collapsed(value, status, limit)


__all__ = ["COLUMNS", "collapse_limit", "is_collapsed", "paired", "summary"]
