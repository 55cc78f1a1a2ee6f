"""The one place the tuned leaderboard takes its statistics from.

Today these are the bench leaderboard's: mean ± std per method, the paired difference to CE with a 95%
t interval (``leaderboard.paired_ci``), and ``ties.mark``'s verdict against CE (paired t-tests, Holm's
correction over the pair's comparisons with CE). When the statistics module replaces them, only this file
changes; the report reads the columns named in ``COLUMNS``.
"""
from __future__ import annotations

import pandas as pd

from .. import leaderboard
from ..sweep import Plan

COLUMNS = ["teacher", "student", "label", "access", "n_seeds", "n_finished", "mean", "std", "delta_ce",
           "delta_ce_low", "delta_ce_high", "delta_ce_n", "vs_ce", "rank_shown"]


def summary(plan: Plan, rows: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, label, access): mean ± std of the plan's metric over finished seeds, Δ vs the plan's ``ce``
    paired by seed with its interval, the corrected verdict against it (better / worse / tied) and the rank
    where the data support one. Empty (with these columns) when there are no rows."""
    s = leaderboard.summarize(plan, rows) if len(rows) else pd.DataFrame()
    if s.empty:
        return pd.DataFrame(columns=COLUMNS)
    return s[COLUMNS].reset_index(drop=True)


def paired(diffs: list[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of paired per-seed differences with a 95% interval (NaN ends for n < 2)."""
    return leaderboard.paired_ci(diffs)


__all__ = ["COLUMNS", "paired", "summary"]
