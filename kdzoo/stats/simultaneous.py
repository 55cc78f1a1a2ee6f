"""All pairwise comparisons of one table's methods with simultaneous intervals.

The model (docs/statistics.md): the value of method i on seed s is mu_i + beta_s + e_is, with a
seed effect beta_s shared by every method (the seed fixes the data subset and the initialization)
and noise e_is of a spread sigma_i of the method's own (methods differ a lot in how much they
scatter: 0.3-1.7 points on the committed Fashion-MNIST CNN table, 15 for a half-collapsed one).
It is fitted on the cells present (a method may miss seeds; ``fit``), and each method's spread is
moderated towards the table's median spread (``moderate``).

Every pair gets T_ij = (mu_i - mu_j) / se_ij, se_ij^2 = s_i^2 / n_i + s_j^2 / n_j, and one critical
value c serves the whole family: the 1 - alpha quantile of max |T_ij| over all pairs when no
method differs. That distribution depends on the spreads and on which cells are present, and no
textbook table covers unequal spreads with 3-5 seeds, so it is simulated (fixed random seed, so the
same table always gets the same verdicts) twice, with the same draws: with equal spreads and with
the fitted ones; c is the larger of the two quantiles. The intervals mu_i - mu_j +- c * se_ij then
hold all at once with probability about 1 - alpha, so a verdict read off any of them ("better",
"worse", "tied", and the rank intervals below) is wrong anywhere in the table with probability
about alpha at most. tests/test_stats_pairwise.py checks that by simulation, unequal spreads
included; docs/statistics.md has the simulations that chose this procedure.

Rank intervals: method i's rank lies in [1 + #methods significantly better than i,
k - #methods significantly worse than i], simultaneously for all i whenever the intervals hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ALPHA = 0.05
PRIOR_DF = 2.0      # how much each method's spread leans on the table's median spread (moderate)
DRAWS = 10_000      # simulated null tables for the critical value
RNG_SEED = 20_231   # fixed: the same table always gets the same critical value
_CHUNK = 2_000


@dataclass
class Pairwise:
    """The fitted family. Arrays are indexed by method position (k methods)."""
    mean: np.ndarray        # (k,) fitted method effects mu_i (seed-adjusted means)
    var: np.ndarray         # (k,) per-seed variance of each method, as used in the intervals (moderated)
    n: np.ndarray           # (k,) seeds per method
    diff: np.ndarray        # (k, k) mu_i - mu_j
    se: np.ndarray          # (k, k) standard error of diff
    crit: float             # the family's critical value c
    alpha: float

    @property
    def low(self) -> np.ndarray:
        return self.diff - self.crit * self.se

    @property
    def high(self) -> np.ndarray:
        return self.diff + self.crit * self.se

    @property
    def better(self) -> np.ndarray:
        """better[i, j]: i is significantly better (higher) than j (the interval of mu_i - mu_j is above 0)."""
        b = self.low > 0
        np.fill_diagonal(b, False)
        return b

    def rank_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """(lowest rank, highest rank) of each method, 1 = best."""
        b = self.better
        k = len(self.mean)
        return 1 + b.sum(0), k - b.sum(1)


def fit(values: np.ndarray, present: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Fit the additive model with per-method spreads: (method effects (..., k), spreads s_i^2 (..., k)).

    ``values``: (..., k, n) with anything in absent cells; ``present``: (k, n) bool. The first round is
    ordinary least squares; later rounds estimate the seed effects with weights 1 / (s_i^2 + median s^2),
    so that a method scattering by 15 points does not move every other method's seed effect (the median
    damps weights from 2-4 degrees of freedom). s_i^2 = k / (k - 1) * sum_s r_is^2 / (n_i - 1), unbiased for
    ordinary least squares with equal spreads and no seed missing; the critical value is simulated for
    this very estimator, so what bias remains elsewhere does not change the error rate."""
    w_cell = present.astype(float)
    x = np.where(present, values, 0.0)
    k = present.shape[0]
    n_i = w_cell.sum(1)
    lead = x.shape[:-2]
    weight = np.ones(lead + (k,))
    full = bool(present.all())
    var = np.zeros(lead + (k,))
    for _ in range(rounds if k >= 3 else 1):
        cw = weight[..., :, None] * w_cell
        total = np.maximum(cw.sum(-2), 1e-300)
        if full:   # the method effects are the row means, whatever the seed effects
            mu = x.mean(-1)
            beta = ((x - mu[..., :, None]) * cw).sum(-2) / total
            beta -= beta.mean(-1, keepdims=True)
        else:      # backfitting
            beta = np.zeros(lead + (present.shape[1],))
            for _ in range(200):
                mu = ((x - beta[..., None, :]) * w_cell).sum(-1) / n_i
                new = ((x - mu[..., :, None]) * cw).sum(-2) / total
                new -= new.mean(-1, keepdims=True)
                done = np.allclose(new, beta, atol=1e-10, rtol=0)
                beta = new
                if done:
                    break
            mu = ((x - beta[..., None, :]) * w_cell).sum(-1) / n_i
        resid = (x - mu[..., :, None] - beta[..., None, :]) * w_cell
        var = (resid ** 2).sum(-1) / np.maximum(n_i - 1, 1) * (k / (k - 1) if k > 1 else 1.0)
        weight = 1.0 / (var + np.maximum(np.median(var, axis=-1, keepdims=True), 1e-300))
    return mu, var


def moderate(var: np.ndarray, n_i: np.ndarray) -> np.ndarray:
    """Each method's spread pulled towards the table's median spread, as if the median were PRIOR_DF more
    degrees of freedom of its own: a spread from 2-4 degrees of freedom is mostly noise, and a t statistic
    divided by it has tails so heavy that nothing is ever significant."""
    df = np.maximum(n_i - 1, 1)
    return (df * var + PRIOR_DF * np.median(var, axis=-1, keepdims=True)) / (df + PRIOR_DF)


def _max_t(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """max over pairs of |T_ij| of each table (leading indices)."""
    n_i = present.sum(1).astype(float)
    mu, var = fit(values, present)
    v = moderate(var, n_i) / n_i
    iu, ju = np.triu_indices(mu.shape[-1], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.abs(mu[..., iu] - mu[..., ju]) / np.sqrt(v[..., iu] + v[..., ju])
    return np.nan_to_num(t, nan=0.0, posinf=np.inf).max(-1)


def _null_quantile(present: np.ndarray, sd: np.ndarray | None, alpha: float, draws: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, draws, _CHUNK):
        z = rng.standard_normal((min(_CHUNK, draws - start),) + present.shape)
        out.append(_max_t(z if sd is None else z * sd[:, None], present))
    return float(np.quantile(np.concatenate(out), 1 - alpha))


@lru_cache(maxsize=64)
def _equal_quantile(pattern: bytes, shape: tuple[int, int], alpha: float, draws: int, seed: int) -> float:
    return _null_quantile(np.frombuffer(pattern, dtype=bool).reshape(shape), None, alpha, draws, seed)


def critical_value(present: np.ndarray, var: np.ndarray, alpha: float = ALPHA, draws: int = DRAWS,
                   seed: int = RNG_SEED) -> float:
    """The 1 - alpha quantile of max |T_ij| when no method differs, for the presence pattern ``present``:
    the larger of the two simulated with equal spreads and with the spreads ``var`` as fitted (not
    moderated: the fitted spreads scatter more than the true ones, which errs on the safe side)."""
    present = np.ascontiguousarray(present, dtype=bool)
    if present.shape[0] < 2:
        return math.nan
    equal = _equal_quantile(present.tobytes(), present.shape, alpha, draws, seed)
    return max(equal, _null_quantile(present, np.sqrt(np.maximum(var, 0.0)), alpha, draws, seed))


def pairwise(values: np.ndarray, alpha: float = ALPHA, draws: int = DRAWS, seed: int = RNG_SEED) -> Pairwise:
    """Fit the table ``values`` (k methods x n seeds, NaN where a seed is missing or left out; every
    method needs at least 2 values) and return its simultaneous pairwise comparisons."""
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    n_i = present.sum(1).astype(float)
    if (n_i < 2).any():
        raise ValueError("every method of a family needs at least 2 values")
    mu, var = fit(values, present)
    shrunk = moderate(var, n_i)
    se = np.sqrt(shrunk[:, None] / n_i[:, None] + shrunk[None, :] / n_i[None, :])
    np.fill_diagonal(se, 0.0)
    crit = critical_value(present, var, alpha, draws, seed)
    return Pairwise(mu, shrunk, n_i, mu[:, None] - mu[None, :], se, crit, alpha)


__all__ = ["ALPHA", "DRAWS", "PRIOR_DF", "Pairwise", "critical_value", "fit", "moderate", "pairwise"]
