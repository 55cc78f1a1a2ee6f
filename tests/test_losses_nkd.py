"""nkd against the authors' code (fixed version) and a plain reference.

Golden values: yzd-v/cls_KD at commit 1e5d48f36957ee460d39d7ebc592c6cc7f8f3d66 (after the fix
9466b3f "Update nkd.py"), mmcls/models/dis_losses/nkd.py, copied to /tmp with
``git show <commit>:<path>`` and patched by sed only to drop the mmcls registry import and decorator.
Command, on the inputs of tests/golden_inputs.py in float64::

    NKDLoss("loss_nkd", True, temp=T, gamma=g)(s, t, y)

value and sum(d value / d s * W), printed with repr. Their loss returns target + non-target part.
"""
from __future__ import annotations

import math

import pytest
import torch

import kdzoo
from kdzoo import ConfigError

from golden_inputs import LABELS, student, teacher, value_and_slope

GOLDEN = {  # (T, gamma): (value, slope)
    (3.0, 3.5): (76.23788483012684, -1.9199621647713954),    # CIFAR-100 config (the defaults)
    (1.0, 1.5): (6.075729688849529, -0.5725172380812504),    # ImageNet config
}


@pytest.mark.parametrize("T, gamma", sorted(GOLDEN))
def test_equals_cls_kd(T, gamma):
    kw = {} if (T, gamma) == (3.0, 3.5) else {"temperature": T, "gamma": gamma}
    value, slope = value_and_slope(kdzoo.build_loss("nkd", **kw), ["target", "non_target"])
    assert value == pytest.approx(GOLDEN[(T, gamma)][0], rel=1e-5)
    assert slope == pytest.approx(GOLDEN[(T, gamma)][1], rel=1e-5)


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def nkd_reference(s, t, y, T, gamma):
    target = non_target = 0.0
    for srow, trow, label in zip(s.tolist(), t.tolist(), y):
        target += -_softmax(trow)[label] * math.log(_softmax(srow)[label])
        s_rest = [v / T for c, v in enumerate(srow) if c != label]
        t_rest = [v / T for c, v in enumerate(trow) if c != label]
        non_target += -sum(p * math.log(q) for p, q in zip(_softmax(t_rest), _softmax(s_rest)))
    n = len(y)
    return target / n, gamma * T * T * non_target / n


@pytest.mark.parametrize("T, gamma", [(3.0, 3.5), (1.0, 1.5), (6.0, 0.5)])
def test_plain_reference(T, gamma):
    out = kdzoo.build_loss("nkd", temperature=T, gamma=gamma)(student(), teacher(), torch.tensor(LABELS))
    want_t, want_nt = nkd_reference(student(), teacher(), LABELS, T, gamma)
    assert float(out["target"]) == pytest.approx(want_t, rel=1e-5)
    assert float(out["non_target"]) == pytest.approx(want_nt, rel=1e-5)


def test_old_mask_would_keep_the_target_class():
    """The pre-9466b3f mask (scatter 1) kept the label in the non-target softmax; the value then differs."""
    s, t, y = student(), teacher(), torch.tensor(LABELS)
    T, gamma = 3.0, 3.5
    old = -gamma * T * T * (torch.softmax(t / T, 1) * torch.log_softmax(s / T, 1)).sum(1).mean()
    new = kdzoo.build_loss("nkd")(s, t, y)["non_target"]
    assert abs(float(old) - float(new)) > 1.0


def test_target_weight_has_no_gradient():
    loss = kdzoo.build_loss("nkd")
    assert loss.requires == "probs" and (loss.year, loss.venue) == (2023, "ICCV")
    y = torch.tensor(LABELS)
    t = teacher().requires_grad_(True)
    out = loss(student().requires_grad_(True), t, y)
    (g,) = torch.autograd.grad(out["target"], t, allow_unused=True)
    assert g is None or float(g.abs().sum()) == 0.0


def test_one_class_and_bad_temperature_are_one_line_errors():
    with pytest.raises(ConfigError, match="nkd: needs at least 2 classes"):
        kdzoo.build_loss("nkd")(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ConfigError, match="nkd: temperature must be > 0") as err:
        kdzoo.build_loss("nkd", temperature=-1)
    assert "\n" not in str(err.value)
