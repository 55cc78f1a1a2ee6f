"""Per-comparison building blocks: means and spreads, Student-t quantiles, the paired and Welch
intervals, and Holm's step-down correction.

Distribution functions are scipy's (``scipy.stats.t``); nothing here is hand-written numerics.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from scipy import stats as _st

LEVEL = 0.95   # the confidence level of every interval kdzoo prints


def finite(values: Iterable[float]) -> list[float]:
    """The values that are numbers (NaN and None dropped)."""
    return [float(x) for x in values if x is not None and x == x]


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of the finite values; NaN where undefined."""
    v = finite(values)
    n = len(v)
    mean = float(np.mean(v)) if n else math.nan
    std = float(np.std(v, ddof=1)) if n > 1 else math.nan
    return mean, std, n


def t_quantile(q: float, df: float) -> float:
    """The q-quantile of Student's t with ``df`` (> 0, fractional allowed) degrees of freedom."""
    if not df > 0:
        return math.nan
    return float(_st.t.ppf(q, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return float(2.0 * _st.t.sf(abs(t), df))


def paired_ci(diffs: Iterable[float], level: float = LEVEL) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of per-seed differences with a Student-t interval (one comparison,
    uncorrected); low/high NaN for n < 2."""
    mean, sd, n = mean_std(diffs)
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


def welch(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> tuple[float, float, float]:
    """(b - a, its standard error, Welch-Satterthwaite degrees of freedom) of two independent samples."""
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return mean_b - mean_a, 0.0, float(n_a + n_b - 2)
    return mean_b - mean_a, se, welch_df(sd_a, n_a, sd_b, n_b)


def welch_df(sd_a: float, n_a: int, sd_b: float, n_b: int) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two sample means."""
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    if va + vb == 0:
        return float(n_a + n_b - 2)
    return (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))


def holm(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections: the k-th smallest p is tested at alpha / (m - k + 1), stopping at the
    first kept."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    reject = [False] * len(pvalues)
    m = len(pvalues)
    for k, i in enumerate(order):
        if pvalues[i] <= alpha / (m - k):
            reject[i] = True
        else:
            break
    return reject


__all__ = ["LEVEL", "finite", "holm", "mean_std", "paired_ci", "t_quantile", "t_two_sided_p", "welch", "welch_df"]
