"""Which methods of a leaderboard can be told apart: paired tests over seeds with Holm's correction.

Within one teacher-student pair, every two methods (summary rows: label and
access) are compared on the seeds where both finished: the per-seed
differences get a two-sided paired t-test. All k(k-1)/2 tests of a pair form
one family, corrected with Holm's step-down method (family-wise error 5%).
Then, per method:

- ``vs_ce``: ``better`` / ``worse`` when its difference to the student alone is
  significant among the k-1 comparisons with CE (their own Holm family), ``tied``
  when not (``—`` for CE itself);
- ``tied_with``: the methods it cannot be told apart from;
- ``rank_shown``: its rank when it differs significantly from every other
  method of the pair, else ``tied``. A rank is printed only where the data
  support it: with few seeds, small differences are ties, not orderings.

Fewer than 2 common seeds means no test: the two methods count as tied.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .compare import holm
from .stats import t_sf2

ALPHA = 0.05


def paired_p(diffs: list[float]) -> float:
    """Two-sided p-value of a paired t-test on per-seed differences; NaN with fewer than 2."""
    d = [float(x) for x in diffs if x == x]
    n = len(d)
    if n < 2:
        return math.nan
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    return t_sf2(mean / (sd / math.sqrt(n)), n - 1)


def mark(summary: pd.DataFrame, students: pd.DataFrame, metric: str, ce_label: str | None,
         alpha: float = ALPHA) -> pd.DataFrame:
    """Add ``vs_ce``, ``tied_with`` and ``rank_shown`` to ``summary`` (one row per pair, label, access)."""
    summary = summary.copy()
    summary["vs_ce"], summary["tied_with"], summary["rank_shown"] = "—", "", ""
    ok = students[students.status == "finished"]
    for (teacher, student), g in summary.groupby(["teacher", "student"], sort=False):
        idx = list(g.index)
        runs = {i: _by_seed(ok, teacher, student, summary.at[i, "label"], summary.at[i, "access"], metric)
                for i in idx}
        tests: list[tuple[int, int, float, float]] = []   # (i, j, p, mean difference i - j)
        for a, i in enumerate(idx):
            for j in idx[a + 1:]:
                common = sorted(set(runs[i]) & set(runs[j]))
                diffs = [runs[i][s] - runs[j][s] for s in common]
                tests.append((i, j, paired_p(diffs), sum(diffs) / len(diffs) if diffs else math.nan))
        testable = [t for t in tests if t[2] == t[2]]
        rejected = dict(zip([(i, j) for i, j, _, _ in testable], holm([t[2] for t in testable], alpha)))
        apart: dict[tuple[int, int], bool] = {}
        for i, j, _, _ in tests:
            apart[(i, j)] = apart[(j, i)] = rejected.get((i, j), False)
        sign = {(i, j): d for i, j, _, d in tests} | {(j, i): -d for i, j, _, d in tests}
        ce = next((i for i in idx if summary.at[i, "label"] == ce_label), None)
        # "better/worse than CE" is its own family of k-1 tests (many-to-one, as Dunnett's), so it is
        # not diluted by the k(k-1)/2 comparisons the ranks need
        pvals = {i: next((p for a, b, p, _ in tests if {a, b} == {i, ce}), math.nan) for i in idx if i != ce}
        ce_ids = [i for i in pvals if pvals[i] == pvals[i]]
        vs_ce = dict(zip(ce_ids, holm([pvals[i] for i in ce_ids], alpha))) if ce is not None else {}
        for i in idx:
            others = [j for j in idx if j != i]
            tied = [j for j in others if not apart[(i, j)]]
            summary.at[i, "tied_with"] = "; ".join(str(summary.at[j, "label"]) for j in tied)
            if ce is not None and i != ce:
                summary.at[i, "vs_ce"] = ("tied" if not vs_ce.get(i, False)
                                          else "better" if sign[(i, ce)] > 0 else "worse")
            rank = summary.at[i, "rank"]
            supported = not tied and not pd.isna(rank) and summary.at[i, "n_finished"] >= 2
            summary.at[i, "rank_shown"] = str(int(rank)) if supported else ("tied" if not pd.isna(rank) else "—")
    return summary


def _by_seed(ok: pd.DataFrame, teacher: str, student: str, label: Any, access: Any, metric: str) -> dict[int, float]:
    g = ok[(ok.teacher == teacher) & (ok.student == student) & (ok.label == label) & (ok.access == access)]
    return {int(s): float(v) for s, v in zip(g.seed, g[metric]) if v == v}


__all__ = ["mark", "paired_p"]
