"""Which pairwise procedure for a leaderboard of 3-5 seeds and up to ~25 methods: a simulation study.

    python benchmarks/stats_procedures.py [--tables 400] [--out results/stats_procedures.json]

For synthetic tables (method mean + a seed effect shared by all methods + each method's own noise)
it measures, per candidate procedure:

- the family-wise error under the null (all methods equal, spreads unequal as in the committed
  Fashion-MNIST CNN table and harsher): the share of tables in which some pair is called different;
- on a table shaped like the committed CNN table (its 22 means and spreads, 5 seeds): how many of
  the 231 pairs are separated on average, and how often a pair is separated in the wrong direction.

Candidates: the pooled two-way model with Tukey's studentized range (one spread for all methods);
per-pair paired t-tests with Holm's correction (kdzoo's old `tied with` column); Games-Howell on
seed-adjusted per-method spreads (Welch-Satterthwaite degrees of freedom); a max-|t| procedure with
per-method spreads, unmoderated, calibrated like kdzoo's; and kdzoo's own (kdzoo.stats.simultaneous:
weighted seed effects, spreads moderated towards the median, critical value simulated with equal and
with fitted spreads). docs/statistics.md quotes the results. Fixed seeds; a run takes minutes.
"""
from __future__ import annotations

import argparse
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kdzoo.stats import simultaneous as S  # noqa: E402

# the committed results/fashion_mnist CNN table (fmnist_cnn_tiny, 22 methods that did not collapse)
CNN_MEAN = np.array([79.19, 74.87, 79.05, 76.52, 77.39, 78.15, 79.89, 75.63, 75.95, 78.11, 76.66, 76.72, 78.13,
                     74.59, 77.82, 76.12, 74.94, 77.85, 77.11, 78.76, 79.81, 79.65])
CNN_SD = np.array([0.62, 0.67, 0.45, 0.51, 0.74, 1.73, 0.41, 0.63, 1.33, 0.58, 0.72, 0.70, 0.84, 0.78, 0.66, 0.59,
                   0.92, 0.41, 0.40, 0.72, 0.52, 0.49])
SEED_SD = 0.28   # the spread of the seed effects on that table
NULLS = {
    "CNN spreads (0.4-1.7), 22 methods, 5 seeds": (CNN_SD, 5),
    "spreads 0.4-1.7 evenly, 22 methods, 5 seeds": (np.linspace(0.4, 1.7, 22), 5),
    "one half-collapsed method (sd 14), 16 methods, 5 seeds": (np.r_[14.0, 4.5, 3.0, np.linspace(0.2, 0.7, 13)], 5),
    "spreads 0.4-1.7 evenly, 22 methods, 3 seeds": (np.linspace(0.4, 1.7, 22), 3),
    "quick-start size: 0.4 x3, 1.7 x2, 3 seeds": (np.array([0.4, 0.4, 0.4, 1.7, 1.7]), 3),
    "equal spreads, 22 methods, 5 seeds": (np.full(22, 0.7), 5),
}


def pooled_tukey(x: np.ndarray) -> np.ndarray:
    k, n = x.shape
    r = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    df = (k - 1) * (n - 1)
    q = _q(k, df)
    m = x.mean(1)
    return np.abs(m[:, None] - m[None]) / np.sqrt((r ** 2).sum() / df / n) > q


def paired_holm(x: np.ndarray) -> np.ndarray:
    k, n = x.shape
    iu, ju = np.triu_indices(k, 1)
    d = x[iu] - x[ju]
    p = 2 * st.t.sf(np.abs(d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))), n - 1)
    order = np.argsort(p)
    rej = np.zeros(len(p), bool)
    for step, i in enumerate(order):
        if p[i] > 0.05 / (len(p) - step):
            break
        rej[i] = True
    out = np.zeros((k, k), bool)
    out[iu, ju] = rej
    return out | out.T


def games_howell(x: np.ndarray) -> np.ndarray:
    k, n = x.shape
    mu, var = S.fit(x, np.ones_like(x, bool), rounds=1)
    v = var / n
    se2 = v[:, None] + v[None]
    nu = np.floor(se2 ** 2 / ((v ** 2)[:, None] / (n - 1) + (v ** 2)[None] / (n - 1)))
    t = np.abs(mu[:, None] - mu[None]) / np.sqrt(se2)
    out = np.zeros((k, k), bool)
    for d in np.unique(nu[np.triu_indices(k, 1)]):
        out |= (nu == d) & (t * np.sqrt(2) > _q(k, int(max(d, 1))))
    np.fill_diagonal(out, False)
    return out


def raw_max_t(x: np.ndarray, draws: int) -> np.ndarray:
    """Per-method spreads without moderation, ordinary least squares, critical value as kdzoo's."""
    k, n = x.shape
    pres = np.ones_like(x, bool)
    mu, var = S.fit(x, pres, rounds=1)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((draws, k, n))
    iu, ju = np.triu_indices(k, 1)

    def max_t(v: np.ndarray, m: np.ndarray) -> np.ndarray:
        return (np.abs(m[..., iu] - m[..., ju]) / np.sqrt(v[..., iu] / n + v[..., ju] / n)).max(-1)
    c = max(np.quantile(max_t(*S.fit(z, pres, rounds=1)[::-1]), 0.95),
            np.quantile(max_t(*S.fit(z * np.sqrt(var)[:, None], pres, rounds=1)[::-1]), 0.95))
    out = np.abs(mu[:, None] - mu[None]) > c * np.sqrt(var[:, None] / n + var[None] / n)
    np.fill_diagonal(out, False)
    return out


@lru_cache(maxsize=None)
def _q(k: int, df: int) -> float:
    return float(st.studentized_range.ppf(0.95, k, df))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=400, help="simulated tables per setting")
    ap.add_argument("--draws", type=int, default=2000, help="null draws for the simulated critical values")
    ap.add_argument("--part", choices=["all", "null", "power"], default="all", help="which half of the study")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    procs = {"pooled two-way, Tukey": pooled_tukey, "paired t per pair, Holm": paired_holm,
             "Games-Howell, per-method spreads": games_howell,
             "max-|t|, per-method spreads, unmoderated": lambda x: raw_max_t(x, args.draws),
             "kdzoo.stats (moderated, weighted seeds)": lambda x: _both_ways(S.pairwise(x, draws=args.draws).better)}
    rng = np.random.default_rng(2023)
    results: dict = {"tables": args.tables, "draws": args.draws, "null": {}, "power": {}}
    for name, (sd, n) in NULLS.items() if args.part != "power" else ():
        x = rng.normal(0, SEED_SD, (args.tables, 1, n)) + rng.normal(size=(args.tables, len(sd), n)) * sd[None, :, None]
        rates = {p: float(np.mean([f(t).any() for t in x])) for p, f in procs.items()}
        results["null"][name] = rates
        print(f"null, {name}: " + ", ".join(f"{p} {r:.3f}" for p, r in rates.items()), flush=True)
    rng = np.random.default_rng(2024)
    if args.part == "null":
        return _write(args.out, results)
    x = (CNN_MEAN[None, :, None] + rng.normal(0, SEED_SD, (args.tables // 2, 1, 5))
         + rng.normal(size=(args.tables // 2, len(CNN_SD), 5)) * CNN_SD[None, :, None])
    truth = np.sign(CNN_MEAN[:, None] - CNN_MEAN[None])
    for p, f in procs.items():
        sep, wrong = [], []
        for t in x:
            r = f(t)
            m = t.mean(1)
            sep.append(r[np.triu_indices(len(CNN_MEAN), 1)].sum())
            wrong.append((r & (np.sign(m[:, None] - m[None]) != truth)).any())
        results["power"][p] = {"pairs_separated": float(np.mean(sep)), "wrong_direction": float(np.mean(wrong))}
        print(f"CNN-shaped table: {p}: {np.mean(sep):.1f} of 231 pairs separated, wrong direction in "
              f"{np.mean(wrong):.3f} of tables", flush=True)
    _write(args.out, results)


def _write(path: str | None, results: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=1) + "\n")


def _both_ways(better: np.ndarray) -> np.ndarray:
    """kdzoo's matrix says which of two is better; the others' say whether two differ."""
    return better | better.T


if __name__ == "__main__":
    main()
