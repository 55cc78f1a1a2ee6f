"""kdzoo's statistics, in one place: every test, interval, correction and power figure that a
leaderboard, ``kdzoo compare`` or a tuning report prints comes from here. The procedures, the verdict
words and the simulations that justify them are explained in docs/statistics.md.

- ``basic``: means and spreads, t quantiles, paired and Welch intervals, Holm's correction;
- ``power``: power of Welch's test (noncentral t), detectable differences;
- ``collapse``: when a run counts as collapsed;
- ``simultaneous``: all pairwise comparisons of a table with simultaneous intervals, rank intervals;
- ``verdicts``: ``verdict_table`` / ``Family``, a table's verdicts from per-seed values.

This package loads scipy; training never imports it.
"""
from __future__ import annotations

from .basic import LEVEL, holm, mean_std, paired_ci, t_quantile, t_two_sided_p, welch, welch_df
from .collapse import MARGIN as COLLAPSE_MARGIN
from .collapse import threshold as collapse_threshold
from .power import POWER, detectable_difference, equivalence_chance, two_sample, welch_power
from .simultaneous import ALPHA, Pairwise, pairwise
from .verdicts import BETTER, COLLAPSED, TESTED, TIED, TOO_FEW, WORSE, Comparison, Family, rank_text, verdict_table

__all__ = ["ALPHA", "BETTER", "COLLAPSED", "COLLAPSE_MARGIN", "Comparison", "Family", "LEVEL", "POWER", "Pairwise",
           "TESTED", "TIED", "TOO_FEW", "WORSE", "collapse_threshold", "detectable_difference", "equivalence_chance",
           "holm", "mean_std", "pairwise", "paired_ci", "rank_text", "t_quantile", "t_two_sided_p", "two_sample",
           "verdict_table", "welch", "welch_df", "welch_power"]
