"""wsld against the authors' code and a plain reference.

Golden values: yzd-v/cls_KD at commit 1e5d48f36957ee460d39d7ebc592c6cc7f8f3d66,
mmcls/models/dis_losses/wsld.py, and bellymonster/Weighted-Soft-Label-Distillation at
commit 67820dd7c3c733d5331b78b1e66ef8a990391d5e, knowledge_distiller.py, copied to /tmp with
``git show <commit>:<path>`` and patched by sed only to run on a CPU without their frameworks
(mmcls registry import dropped; ``.cuda()`` removed; bellymonster: ``config.optim.label_smooth``
replaced by its value False from imagenet_train_cfg.py:22, ``num_classes=1000`` by the logits' C).
Command, on the inputs of tests/golden_inputs.py in float64::

    WSLDLoss("loss_wsld", True, temp=T, alpha=a, num_classes=10)(s, t, y)           # cls_KD
    WSLDistiller(t_net=lambda x: t, s_net=lambda x: s)(None, y)[1]                  # bellymonster, CE included

value and sum(d value / d s * W), printed with repr.
"""
from __future__ import annotations

import math

import pytest
import torch

import kdzoo
from kdzoo import ConfigError

from golden_inputs import LABELS, student, teacher, value_and_slope

GOLDEN_CLSKD = {  # (T, alpha): (value, slope)
    (4.0, 2.25): (57.450094949864344, -0.9283658413049136),   # cls_KD CIFAR-100 config (the defaults)
    (2.0, 2.5): (17.833500267787343, -0.8453734853335051),    # cls_KD ImageNet config
}
GOLDEN_BELLYMONSTER_T2 = (22.123015554768987, -1.1136009533327873)  # hard CE + 2.5 * soft, T=2


@pytest.mark.parametrize("T, alpha", sorted(GOLDEN_CLSKD))
def test_equals_cls_kd(T, alpha):
    kw = {} if (T, alpha) == (4.0, 2.25) else {"temperature": T, "alpha": alpha}
    value, slope = value_and_slope(kdzoo.build_loss("wsld", **kw), ["wsld"])
    want_value, want_slope = GOLDEN_CLSKD[(T, alpha)]
    assert value == pytest.approx(want_value, rel=1e-5)
    assert slope == pytest.approx(want_slope, rel=1e-5)


def test_equals_bellymonster_imagenet_setting_with_ce():
    value, slope = value_and_slope(kdzoo.build_loss("wsld", temperature=2.0, alpha=2.5), ["ce", "wsld"])
    assert value == pytest.approx(GOLDEN_BELLYMONSTER_T2[0], rel=1e-5)
    assert slope == pytest.approx(GOLDEN_BELLYMONSTER_T2[1], rel=1e-5)


def _softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    return [v / sum(e) for v in e]


def wsld_reference(s, t, y, T, alpha):
    total = 0.0
    for srow, trow, label in zip(s.tolist(), t.tolist(), y):
        ce_s = -math.log(_softmax(srow)[label])
        ce_t = -math.log(_softmax(trow)[label])
        weight = 1 - math.exp(-max(ce_s / (ce_t + 1e-7), 0.0))
        q, p = _softmax([v / T for v in srow]), _softmax([v / T for v in trow])
        total += weight * -sum(pi * math.log(qi) for pi, qi in zip(p, q))
    return alpha * T * T * total / len(y)


@pytest.mark.parametrize("T, alpha", [(4.0, 2.25), (1.0, 1.0), (7.5, 0.3)])
def test_plain_reference(T, alpha):
    out = kdzoo.build_loss("wsld", temperature=T, alpha=alpha)(student(), teacher(), torch.tensor(LABELS))
    assert float(out["wsld"]) == pytest.approx(wsld_reference(student(), teacher(), LABELS, T, alpha), rel=1e-5)


def test_term_vanishes_for_a_perfect_student():
    # student equal to a one-hot-confident row on the label: CE_s ~ 0, so the weight and the term are ~0
    y = torch.tensor(LABELS)
    s = torch.nn.functional.one_hot(y, 10).double() * 60.0
    assert float(kdzoo.build_loss("wsld")(s, teacher(), y)["wsld"]) < 1e-12


def test_declares_probs_access_and_its_paper():
    loss = kdzoo.build_loss("wsld")
    assert loss.requires == "probs" and (loss.year, loss.venue) == (2021, "ICLR")


def test_bad_temperature_is_one_line_config_error():
    with pytest.raises(ConfigError, match=r"wsld: temperature must be > 0") as err:
        kdzoo.build_loss("wsld", temperature=0)
    assert "\n" not in str(err.value)
