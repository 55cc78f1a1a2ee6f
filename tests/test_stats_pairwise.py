"""The pairwise family of kdzoo.stats.simultaneous on synthetic tables with known answers.

Simulations use numpy with fixed seeds and fewer null draws for the critical value than a leaderboard
(800, not 10,000) to stay within a few seconds each; the Monte Carlo error of a rate over N tables
is allowed as two standard errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from kdzoo.stats.simultaneous import fit, pairwise

DRAWS = 800


def _tables(rng: np.random.Generator, means: np.ndarray, sds: np.ndarray, n: int, count: int,
            seed_sd: float = 0.3) -> np.ndarray:
    """count tables (methods x seeds): method mean + a seed effect shared by all methods + the method's noise."""
    return (means[None, :, None] + rng.normal(0, seed_sd, (count, 1, n))
            + rng.normal(size=(count, len(means), n)) * sds[None, :, None])


def _slack(rate: float, count: int) -> float:
    return 2 * math.sqrt(rate * (1 - rate) / count)


def test_first_round_is_the_two_way_anova_by_hand():
    x = np.array([[70.0, 71.0, 73.0, 70.5], [72.0, 72.5, 75.0, 73.5], [69.0, 71.5, 71.0, 70.0]])
    mu, var = fit(x, np.ones_like(x, dtype=bool), rounds=1)
    assert mu == pytest.approx(x.mean(1))
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()   # two-way residuals
    k, n = x.shape
    assert var == pytest.approx((resid ** 2).sum(1) / (n - 1) * k / (k - 1))
    # equal spreads: the expected value of each s_i^2 is sigma^2 (checked over many tables)
    z = np.random.default_rng(0).normal(size=(20000, 6, 4)) * 2.0
    assert fit(z, np.ones((6, 4), bool), rounds=1)[1].mean() == pytest.approx(4.0, rel=0.02)


def test_two_methods_give_the_paired_t_interval():
    """With two methods the family is one paired t-test: the interval is mean ± t(0.975, n-1) sd / sqrt(n) of
    the per-seed differences (up to the simulated critical value's Monte Carlo error)."""
    x = np.array([[74.2, 75.1, 73.8, 76.0, 74.9], [75.0, 77.2, 74.1, 77.9, 76.3]])
    p = pairwise(x, draws=20_000)
    d = x[1] - x[0]
    half = st.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert p.diff[1, 0] == pytest.approx(d.mean())
    assert p.high[1, 0] - p.diff[1, 0] == pytest.approx(half, rel=0.03)
    assert p.better[1, 0] == (d.mean() - half > 0)
    assert p.rank_intervals()[0].tolist() == ([2, 1] if p.better[1, 0] else [1, 1])


@pytest.mark.parametrize("name, sds, n", [
    ("CNN-like spreads 0.4-1.7, 5 seeds", np.linspace(0.4, 1.7, 10), 5),
    ("two wide among tight, 3 seeds", np.array([0.4, 0.4, 0.4, 0.4, 1.7, 1.7]), 3),
    ("one half-collapsed method (sd 12)", np.r_[12.0, np.linspace(0.3, 0.9, 7)], 5),
])
def test_family_wise_error_at_most_5_percent_under_the_null(name, sds, n):
    """No method differs: some pair is called different in <= 5% of tables. The pooled two-way model (one
    spread for all, Tukey's studentized range) goes above that with these spreads: the test can fail."""
    rng = np.random.default_rng(len(sds) * 10 + n)
    count = 250
    tables = _tables(rng, np.zeros(len(sds)), sds, n, count)
    errors = sum(pairwise(t, draws=DRAWS).better.any() for t in tables)
    assert errors / count <= 0.05 + _slack(0.05, count), name
    k = len(sds)
    q = st.studentized_range.ppf(0.95, k, (k - 1) * (n - 1))
    resid = tables - tables.mean(2, keepdims=True) - tables.mean(1, keepdims=True) + tables.mean((1, 2), keepdims=True)
    mse = (resid ** 2).sum((1, 2)) / ((k - 1) * (n - 1))
    m = tables.mean(2)
    pooled = ((m.max(1) - m.min(1)) / np.sqrt(mse / n) > q).mean()
    assert pooled > 0.05 + _slack(0.05, count), (name, pooled)   # fails the bound the procedure above meets


def test_rank_intervals_cover_the_true_ranks():
    """Over 220 tables with known, distinct means, every method's rank interval contains its true rank, all at
    once, in at least 95% of tables; and the intervals are informative (not all [1, k])."""
    rng = np.random.default_rng(42)
    means = np.array([3.0, 2.4, 1.8, 1.2, 0.9, 0.6, 0.3, 0.0])
    sds = np.array([0.4, 0.9, 0.5, 1.2, 0.6, 0.4, 1.0, 0.7])
    true_rank = np.argsort(np.argsort(-means)) + 1
    count, covered, width = 220, 0, []
    for t in _tables(rng, means, sds, 5, count):
        low, high = pairwise(t, draws=DRAWS).rank_intervals()
        covered += bool(((low <= true_rank) & (true_rank <= high)).all())
        width.append((high - low).mean())
    assert covered / count >= 0.95 - _slack(0.05, count)
    assert np.mean(width) < len(means) - 1 - 2   # on average at least 2 of 7 possible places ruled out
