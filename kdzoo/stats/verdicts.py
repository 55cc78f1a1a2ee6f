"""One table's statistical story: collapse counts, simultaneous intervals, verdicts and rank intervals.

Input: one row per run, a long table with columns ``method``, ``seed``, ``value`` (e.g. test top-1 %)
and optionally ``status`` (``finished``, ``diverged``; any other status is a run that did not end and
is left out). Everything a leaderboard prints about a method comes from one ``Family``:

- its seeds: how many ended, how many collapsed (``collapse.py``), mean ± std over the others;
- its outcome: ``tested``, ``collapsed`` (most seeds collapsed: no verdict) or ``too few`` (fewer
  than 2 seeds left);
- for two tested methods, the difference of their seed-adjusted means with a simultaneous interval
  and the verdict ``better`` / ``worse`` / ``tied`` read off that interval (``simultaneous.py``);
- its rank interval among the tested methods.

Because the verdict against a reference, the interval printed beside it, the rank interval and the
list of methods it is tied with all come from the same intervals, they cannot contradict each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable

import numpy as np
import pandas as pd

from . import collapse
from .simultaneous import ALPHA, DRAWS, Pairwise, pairwise

TESTED, COLLAPSED, TOO_FEW = "tested", "collapsed", "too few"
BETTER, WORSE, TIED = "better", "worse", "tied"
FINISHED = "finished"


@dataclass
class Method:
    key: Hashable
    kept: dict[int, float] = field(default_factory=dict)        # seed -> value, the seeds that enter the tests
    collapsed: dict[int, float] = field(default_factory=dict)   # seed -> value (NaN: diverged)

    @property
    def n_ended(self) -> int:
        return len(self.kept) + len(self.collapsed)

    @property
    def outcome(self) -> str:
        if self.collapsed and collapse.most(len(self.collapsed), self.n_ended):
            return COLLAPSED
        return TESTED if len(self.kept) >= 2 else TOO_FEW

    def collapsed_text(self) -> str:
        """``collapsed k/n`` and the collapsed seeds' values, '' when none collapsed."""
        if not self.collapsed:
            return ""
        vals = ", ".join("diverged" if v != v else f"{v:.2f}" for _, v in sorted(self.collapsed.items()))
        return f"collapsed {len(self.collapsed)}/{self.n_ended} ({vals})"


@dataclass
class Comparison:
    diff: float
    low: float
    high: float
    verdict: str     # better | worse | tied, or the outcome of an untested side


class Family:
    """The methods of one table (one teacher-student pair), compared together."""

    def __init__(self, runs: pd.DataFrame, *, classes: int | None = None, alpha: float = ALPHA,
                 draws: int = DRAWS) -> None:
        missing = [c for c in ("method", "seed", "value") if c not in runs.columns]
        if missing:
            raise ValueError(f"runs need the columns method, seed, value (missing: {', '.join(missing)})")
        self.alpha = alpha
        self.limit = collapse.threshold(classes)
        self.methods: dict[Hashable, Method] = {}
        status = runs["status"] if "status" in runs.columns else pd.Series(FINISHED, index=runs.index)
        for key, seed, value, st in zip(runs["method"], runs["seed"], runs["value"], status):
            m = self.methods.setdefault(key, Method(key))
            value = float(value) if value is not None and value == value else math.nan
            if st == collapse.DIVERGED or (st == FINISHED and collapse.collapsed(value, st, self.limit)):
                m.collapsed[int(seed)] = value if st == FINISHED else math.nan
            elif st == FINISHED and value == value:
                m.kept[int(seed)] = value
        self.tested = [k for k, m in self.methods.items() if m.outcome == TESTED]
        self._pos = {k: i for i, k in enumerate(self.tested)}
        self.pairs: Pairwise | None = None
        if len(self.tested) >= 2:
            seeds = sorted({s for k in self.tested for s in self.methods[k].kept})
            x = np.full((len(self.tested), len(seeds)), np.nan)
            for i, k in enumerate(self.tested):
                for j, s in enumerate(seeds):
                    x[i, j] = self.methods[k].kept.get(s, np.nan)
            self.pairs = pairwise(x, alpha, draws)

    # ------------------------------------------------------------- queries
    def compare(self, a: Hashable, b: Hashable) -> Comparison:
        """a - b with its simultaneous interval and the verdict on a ('—' when b is not tested)."""
        if a not in self.methods or b not in self.methods:
            raise KeyError(a if a not in self.methods else b)
        if self.methods[a].outcome != TESTED:
            return Comparison(math.nan, math.nan, math.nan, self.methods[a].outcome)
        if self.methods[b].outcome != TESTED or self.pairs is None:
            return Comparison(math.nan, math.nan, math.nan, "—")
        i, j = self._pos[a], self._pos[b]
        p = self.pairs
        d, lo, hi = float(p.diff[i, j]), float(p.low[i, j]), float(p.high[i, j])
        return Comparison(d, lo, hi, BETTER if lo > 0 else WORSE if hi < 0 else TIED)

    def rank_interval(self, key: Hashable) -> tuple[int, int] | None:
        if key not in self._pos:
            return None
        if self.pairs is None:
            return (1, 1)
        low, high = self.pairs.rank_intervals()
        i = self._pos[key]
        return int(low[i]), int(high[i])

    def tied_with(self, key: Hashable) -> list[Hashable]:
        """The tested methods that ``key`` cannot be told apart from."""
        if key not in self._pos or self.pairs is None:
            return []
        i = self._pos[key]
        sep = self.pairs.better | self.pairs.better.T
        return [k for k, j in self._pos.items() if j != i and not sep[i, j]]

    def table(self, reference: Hashable | None = None) -> pd.DataFrame:
        """One row per method: seeds, collapse, mean ± std of the kept seeds, rank interval, and (given a
        reference method) the difference to it with its simultaneous interval and the verdict."""
        means = {k: float(np.mean(list(self.methods[k].kept.values()))) for k in self.tested}
        order = sorted(self.tested, key=lambda k: -means[k])
        point = {k: 1 + sum(means[o] > means[k] for o in order) for k in order}
        rows: list[dict[str, Any]] = []
        for key, m in self.methods.items():
            kept = list(m.kept.values())
            ri = self.rank_interval(key)
            row: dict[str, Any] = {
                "method": key, "outcome": m.outcome, "n_ended": m.n_ended, "n_kept": len(kept),
                "n_collapsed": len(m.collapsed), "collapsed": m.collapsed_text(),
                "mean": float(np.mean(kept)) if kept else math.nan,
                "std": float(np.std(kept, ddof=1)) if len(kept) > 1 else math.nan,
                "rank": point.get(key, math.nan), "rank_low": ri[0] if ri else math.nan,
                "rank_high": ri[1] if ri else math.nan, "rank_text": rank_text(ri),
                "tied_with": self.tied_with(key),
            }
            if reference is not None:
                c = (self.compare(key, reference) if reference in self.methods and key != reference
                     else Comparison(math.nan, math.nan, math.nan, "—"))
                row.update(delta=c.diff, delta_low=c.low, delta_high=c.high, verdict=c.verdict)
            rows.append(row)
        return pd.DataFrame(rows)


def rank_text(interval: tuple[int, int] | None) -> str:
    """'3' for an exact rank, '2–5' for an interval, '—' for a method without one."""
    if interval is None:
        return "—"
    lo, hi = interval
    return str(lo) if lo == hi else f"{lo}–{hi}"


def verdict_table(runs: pd.DataFrame, reference: Hashable | None = "ce", *, classes: int | None = None,
                  alpha: float = ALPHA, draws: int = DRAWS) -> pd.DataFrame:
    """The entry point for any table of methods over seeds: ``runs`` has columns method, seed, value
    (and optionally status); returns one row per method with its outcome, collapse count, mean ± std
    of the kept seeds, rank interval, the methods it is tied with, and (if ``reference`` names one of
    the methods) its difference to the reference with a simultaneous interval and the verdict.
    ``classes``: the number of classes, for the collapse margin (None: only diverged runs collapse)."""
    return Family(runs, classes=classes, alpha=alpha, draws=draws).table(reference)


__all__ = ["BETTER", "COLLAPSED", "Comparison", "Family", "Method", "TESTED", "TIED", "TOO_FEW", "WORSE",
           "rank_text", "verdict_table"]
