"""kdzoo.stats building blocks on numbers worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kdzoo.stats import holm, mean_std, paired_ci, t_quantile, t_two_sided_p, welch, welch_df


def test_t_quantiles_by_hand():
    # df = 1 is the Cauchy distribution: F^-1(q) = tan(pi (q - 1/2)); df = 2: t = (2q-1) sqrt(2 / (4q(1-q)))
    for q in (0.7, 0.9, 0.975):
        assert t_quantile(q, 1) == pytest.approx(np.tan(np.pi * (q - 0.5)), rel=1e-9)
        assert t_quantile(q, 2) == pytest.approx((2 * q - 1) * np.sqrt(2 / (4 * q * (1 - q))), rel=1e-9)
    # df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2)
    assert t_two_sided_p(7 ** 0.5, 2) == pytest.approx(1 - 7 ** 0.5 / 3, rel=1e-9)
    assert math.isnan(t_quantile(0.975, 0))


def test_paired_ci_on_known_numbers():
    # differences 1, 2, 4: mean 7/3; sample variance ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = 7/3;
    # half width = t(0.975, 2) * sqrt(7/3) / sqrt(3) = 4.302653 * 0.881917 = 3.794583
    mean, low, high, n = paired_ci([1.0, 2.0, 4.0])
    assert n == 3 and mean == pytest.approx(7 / 3)
    assert low == pytest.approx(7 / 3 - 3.794583, abs=1e-5) and high == pytest.approx(7 / 3 + 3.794583, abs=1e-5)
    mean, low, high, n = paired_ci([0.5, float("nan")])
    assert (mean, n) == (0.5, 1) and math.isnan(low) and math.isnan(high)
    assert paired_ci([])[3] == 0


def test_mean_std_welch_and_holm_by_hand():
    assert mean_std([1.0, 2.0, 3.0, float("nan")]) == (2.0, 1.0, 3)
    # se^2 = 1/3 + (20/3)/4 = 2; df = 2^2 / ((1/3)^2/2 + (5/3)^2/3)
    diff, se, df = welch(2.0, 1.0, 3, 5.0, (20 / 3) ** 0.5, 4)
    assert diff == 3.0 and se == pytest.approx(2 ** 0.5) and df == pytest.approx(4 / (1 / 18 + 25 / 27))
    assert welch_df(1.0, 5, 1.0, 5) == pytest.approx(8.0)          # equal spreads and sizes: n_a + n_b - 2
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]


def test_training_never_loads_scipy():
    """kdzoo.stats loads scipy; the bench runner, its workers and the trainer import it only where statistics
    are computed, so a worker process that only trains never pays for it."""
    import subprocess
    import sys
    code = ("import sys, kdzoo.bench, kdzoo.bench.execution.launch, kdzoo.bench.report.leaderboard, kdzoo.engine, kdzoo.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
