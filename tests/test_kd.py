"""kd and kd+ls against a plainly written NumPy reference."""
import math

import numpy as np
import pytest
import torch

import kdzoo


def ref_kd(s, t, y, T, ce_w, kd_w, standardize=False):
    s, t = np.asarray(s, dtype=np.float64), np.asarray(t, dtype=np.float64)
    n, c = s.shape
    ce = 0.0
    for i in range(n):
        lse = math.log(sum(math.exp(v) for v in s[i]))
        ce += lse - s[i, y[i]]
    ce /= n
    if standardize:
        def z(row):
            m = sum(row) / c
            sd = math.sqrt(sum((v - m) ** 2 for v in row) / (c - 1))
            return [(v - m) / (sd + 1e-7) for v in row]
        s = np.array([z(r) for r in s])
        t = np.array([z(r) for r in t])
    kl = 0.0
    for i in range(n):
        pt = [math.exp(v / T) for v in t[i]]
        ps = [math.exp(v / T) for v in s[i]]
        zt, zs = sum(pt), sum(ps)
        for j in range(c):
            p, q = pt[j] / zt, ps[j] / zs
            kl += p * (math.log(p) - math.log(q))
    kl /= n
    return ce_w * ce, kd_w * T * T * kl


S = [[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4], [-3.0, 1.0, 1.0, 2.5]]
T_ = [[3.0, 0.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 4.0, -2.0, 0.5]]
Y = [0, 3, 3]  # the teacher is wrong on the last sample and has ties on the second


@pytest.mark.parametrize("T,ce_w,kd_w", [(4.0, 0.1, 0.9), (1.0, 0.5, 0.5), (2.5, 1.0, 3.0)])
def test_kd_matches_reference(T, ce_w, kd_w):
    loss = kdzoo.build_loss("kd", temperature=T, ce_weight=ce_w, kd_weight=kd_w)
    out = loss(torch.tensor(S), torch.tensor(T_), torch.tensor(Y))
    ce, kd = ref_kd(S, T_, Y, T, ce_w, kd_w)
    assert set(out) == {"ce", "kd"}
    assert out["ce"].item() == pytest.approx(ce, abs=1e-5)
    assert out["kd"].item() == pytest.approx(kd, abs=1e-5)


def test_kd_ls_matches_reference_with_paper_defaults():
    loss = kdzoo.build_loss("kd+ls")
    assert (loss.temperature, loss.kd_weight, loss.ce_weight, loss.standardize) == (2.0, 9.0, 0.1, True)
    out = loss(torch.tensor(S), torch.tensor(T_), torch.tensor(Y))
    ce, kd = ref_kd(S, T_, Y, 2.0, 0.1, 9.0, standardize=True)
    assert out["ce"].item() == pytest.approx(ce, abs=1e-5)  # CE is not standardized
    assert out["kd"].item() == pytest.approx(kd, abs=1e-5)


def test_kd_hand_value_two_classes():
    # s = [0, 0], t = [log 3, 0], T = 1: p_t = (3/4, 1/4), p_s = (1/2, 1/2)
    # KL = 3/4 log(3/2) + 1/4 log(1/2); CE = log 2
    out = kdzoo.build_loss("kd", temperature=1.0, ce_weight=1.0, kd_weight=1.0)(
        torch.zeros(1, 2), torch.tensor([[math.log(3.0), 0.0]]), torch.tensor([0]))
    assert out["ce"].item() == pytest.approx(math.log(2), abs=1e-6)
    assert out["kd"].item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), abs=1e-6)


def test_kd_bad_temperature_is_a_config_error():
    with pytest.raises(kdzoo.ConfigError, match="temperature must be > 0"):
        kdzoo.build_loss("kd", temperature=0)
