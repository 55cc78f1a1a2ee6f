"""abkd against the authors' code, a plain reference and the divergence's limits.

Golden values: ghwang-s/abkd at commit df813185e69d21d1e99510272cd94e49be7250c0,
standard_classification/distiller_zoo/abkl.py, copied unchanged to /tmp with
``git show <commit>:<path>``. Command, on the inputs of tests/golden_inputs.py in float64::

    ABKL(SimpleNamespace(kd_T=T, ab_alpha=a, ab_beta=b))(s, t)[0]

value and sum(d value / d s * W), printed with repr. Their train loop multiplies it by ``-b``
(helper/loops.py:94), kdzoo's ``kd_weight``, so kdzoo is run with kd_weight=1 here.
"""
from __future__ import annotations

import math

import pytest
import torch

import kdzoo
from kdzoo import ConfigError

from golden_inputs import LABELS, student, teacher, value_and_slope

GOLDEN = {  # (alpha, beta, T): (value, slope)
    (0.8, 0.3, 4.0): (0.2209084485777052, -0.028135744994264383),    # README example (the defaults)
    (0.5, 0.5, 2.0): (0.8500916304322802, -0.1018456164023878),
    (0.0, 0.0, 4.0): (3.1238409932996762, -0.37262424212979584),     # the authors' degenerate branches
    (0.0, 0.5, 4.0): (0.46073623188492335, -0.05724742875693426),
    (0.5, 0.0, 4.0): (0.4589724539559012, -0.05717532454153316),
    (0.5, -0.5, 4.0): (1.5872115640058861, -0.1996064930413908),
}


@pytest.mark.parametrize("alpha, beta, T", sorted(GOLDEN))
def test_equals_authors_code(alpha, beta, T):
    loss = kdzoo.build_loss("abkd", alpha=alpha, beta=beta, temperature=T, kd_weight=1.0)
    value, slope = value_and_slope(loss, ["abkd"])
    assert value == pytest.approx(GOLDEN[(alpha, beta, T)][0], rel=1e-5)
    assert slope == pytest.approx(GOLDEN[(alpha, beta, T)][1], rel=1e-5)


def test_defaults():
    loss = kdzoo.build_loss("abkd")
    assert (loss.alpha, loss.beta, loss.temperature, loss.kd_weight, loss.ce_weight) == (0.8, 0.3, 4.0, 32.0, 1.0)
    assert loss.requires == "probs" and (loss.year, loss.venue) == (2025, "ICML")
    out = loss(student(), teacher(), torch.tensor(LABELS))
    assert float(out["abkd"]) == pytest.approx(32 * GOLDEN[(0.8, 0.3, 4.0)][0], rel=1e-5)


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def ab_reference(s, t, alpha, beta, T):
    """Cichocki et al.'s general alpha-beta divergence, summed over classes, batch mean."""
    total = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        p, q = _softmax([v / T for v in trow]), _softmax([v / T for v in srow])
        total += -sum(pi ** alpha * qi ** beta - alpha / (alpha + beta) * pi ** (alpha + beta)
                      - beta / (alpha + beta) * qi ** (alpha + beta) for pi, qi in zip(p, q)) / (alpha * beta)
    return total / len(s)


@pytest.mark.parametrize("alpha, beta, T", [(0.8, 0.3, 4.0), (1.5, 0.2, 1.0), (0.3, 1.2, 3.0), (-0.4, 0.9, 2.0)])
def test_plain_reference(alpha, beta, T):
    out = kdzoo.build_loss("abkd", alpha=alpha, beta=beta, temperature=T, kd_weight=1.0)(
        student(), teacher(), torch.tensor(LABELS))
    assert float(out["abkd"]) == pytest.approx(ab_reference(student(), teacher(), alpha, beta, T), rel=1e-5)


def test_forward_kl_limit_and_the_authors_branch_factor():
    """alpha=1, beta=0 is KL(p || q) (the authors' beta = 0 branch, whose 1/alpha is right at alpha=1), and the
    general formula tends to it. Next to each degenerate point the general formula is 1/beta (alpha = 0) or
    1/alpha (beta = 0, alpha + beta = 0) times the authors' branch there: their branches miss one such
    factor (see abkd.py). Small steps in float32: loose tolerances."""
    s, t, y = student(), teacher(), torch.tensor(LABELS)
    kl = kdzoo.build_loss("kd", temperature=4.0, kd_weight=1.0)(s, t, y)["kd"] / 16.0
    exact = kdzoo.build_loss("abkd", alpha=1.0, beta=0.0, kd_weight=1.0)(s, t, y)["abkd"]
    assert float(exact) == pytest.approx(float(kl), rel=1e-5)
    near_kl = kdzoo.build_loss("abkd", alpha=1.0, beta=1e-3, kd_weight=1.0)(s, t, y)["abkd"]
    assert float(near_kl) == pytest.approx(float(kl), rel=5e-3)
    for (a_near, b_near), (a, b), factor in [((1e-3, 0.5), (0.0, 0.5), 0.5),       # alpha = 0: beta * limit
                                             ((0.5, 1e-3), (0.5, 0.0), 0.5),       # beta = 0: alpha * limit
                                             ((0.5, -0.499), (0.5, -0.5), 0.5)]:   # alpha + beta = 0: alpha * limit
        near = kdzoo.build_loss("abkd", alpha=a_near, beta=b_near, kd_weight=1.0)(s, t, y)["abkd"]
        branch = kdzoo.build_loss("abkd", alpha=a, beta=b, kd_weight=1.0)(s, t, y)["abkd"]
        assert float(near) == pytest.approx(float(branch) / factor, rel=5e-3), (a, b)


def test_infinite_logits_are_masked_like_the_authors():
    """Golden value: the same abkl.py, ABKL(kd_T=4, ab_alpha=0.8, ab_beta=0.3) on the fixed inputs with
    student logit [0, 4] set to -inf (without the mask the value would be 0.2602)."""
    s, t = student(), teacher()
    s[0, 4] = float("-inf")
    out = kdzoo.build_loss("abkd", kd_weight=1.0)(s, t, torch.tensor(LABELS))
    assert float(out["abkd"]) == pytest.approx(0.22163901806665598, rel=1e-5)


def test_bad_temperature_is_one_line_config_error():
    with pytest.raises(ConfigError, match="abkd: temperature must be > 0") as err:
        kdzoo.build_loss("abkd", temperature=0)
    assert "\n" not in str(err.value)
