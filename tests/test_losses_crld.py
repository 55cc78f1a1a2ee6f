"""crld equals its authors' code.

Golden values: the authors' release, arcaninez/CRLD @ fe42473e4ba48a59ce8b3868bdfc1a2383423bfa,
``mdistiller/distillers/CRLD.py`` and ``_base.py`` run unchanged from /tmp/h-losses/crld_golden/authors;
golden.py there gives student and teacher modules that return the fixed weak/strong logits of ``_inputs``
and calls ``CRLD(student, teacher, cfg).forward_train("w", "s", y)`` with cfg.CRLD = the defaults of their
cfg.py (CE 1, WV 2, CV 0.5, T 4, TAU_W 0.9, TAU_S 0.2; teacher logits scaled by 10 so that tau_w keeps some
samples) and (CE 0.5, WV 1.5, CV 1, T 2, TAU_W 0.5, TAU_S 0.6; scale 4); ``cd /tmp/h-losses/crld_golden &&
python golden.py``, torch 2.14.1 (CPU). Their loss_kd_wv + loss_kd_cv is kdzoo's wv + cv. (The copy in
haiduo/DeepKD @ afb5964, run the same way with SOLVER.TRAINER "ours", gave the same values.)
"""
from __future__ import annotations

import math

import pytest

import kdzoo
from kdzoo.errors import ConfigError

from test_losses_mlkd import _inputs

OTHER = dict(ce_weight=0.5, wv_weight=1.5, cv_weight=1.0, temperature=2.0, tau_w=0.5, tau_s=0.6)
GOLDEN = [  # (input seed, teacher scale, overrides, authors' loss_ce, loss_kd)
    (0, 10.0, {}, 7.38157320022583, 57.735267639160156),
    (1, 4.0, OTHER, 4.347398281097412, 18.04682159423828),
]


def _terms(seed, tscale, **kw):
    sw, ss, tw, ts, y = _inputs(seed, tscale=tscale)
    return kdzoo.build_loss("crld", **kw)(sw, tw, y, student_logits_strong=ss, teacher_logits_strong=ts)


@pytest.mark.parametrize("seed,tscale,overrides,ce,kd", GOLDEN)
def test_equals_authors_code(seed, tscale, overrides, ce, kd):
    terms = _terms(seed, tscale, **overrides)
    assert float(terms["ce"]) == pytest.approx(ce, rel=1e-5)
    assert float(terms["wv"] + terms["cv"]) == pytest.approx(kd, rel=1e-5)


def test_masks_are_not_trivial_in_the_golden_inputs():
    for seed, tscale, kw, *_ in GOLDEN:
        _sw, _ss, tw, ts, _y = _inputs(seed, tscale=tscale)
        tau_w, tau_s = kw.get("tau_w", 0.9), kw.get("tau_s", 0.2)
        kept = [float((t.softmax(1).max(1).values >= tau).float().mean()) for t, tau in ((tw, tau_w), (ts, tau_s))]
        assert any(0 < k < 1 for k in kept), kept


def _plain_kd(s_row, t_row, tau):
    ps = [math.exp(v / tau) for v in s_row]
    pt = [math.exp(v / tau) for v in t_row]
    zs, zt = sum(ps), sum(pt)
    return tau ** 2 * sum(b / zt * math.log((b / zt) / (a / zs)) for a, b in zip(ps, pt))


def test_equals_plain_per_sample_reference():
    sw, ss, tw, ts, y = (v.tolist() for v in _inputs(2, tscale=6.0))
    tau, n = 4.0, len(sw)
    conf = lambda row: max(math.exp(v) for v in row) / sum(math.exp(v) for v in row)
    wv = sum((_plain_kd(sw[i], tw[i], tau) + _plain_kd(ss[i], ts[i], tau)) * (conf(tw[i]) >= 0.9) for i in range(n))
    cv = sum((_plain_kd(ss[i], tw[i], tau) + _plain_kd(sw[i], ts[i], tau)) * (conf(ts[i]) >= 0.2) for i in range(n))
    terms = _terms(2, 6.0)
    assert float(terms["wv"]) == pytest.approx(2.0 * wv / n, rel=1e-5)
    assert float(terms["cv"]) == pytest.approx(0.5 * cv / n, rel=1e-5)


def test_one_line_errors():
    sw, ss, tw, ts, y = _inputs(0)
    with pytest.raises(ConfigError, match="needs the strong view"):
        kdzoo.build_loss("crld")(sw, tw, y)
    with pytest.raises(ConfigError, match="tau_w is a confidence threshold"):
        kdzoo.build_loss("crld", tau_w=1.5)
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        kdzoo.build_loss("crld", temperature=0)
