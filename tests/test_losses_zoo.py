"""The loss zoo (ce, kd, dkd, dist, rld, mcld, mse and the +ls variants) against plain references.

The references below use float64 NumPy/Python with explicit loops and call no
kdzoo code (not even its standardize/KL helpers), so a wrong formula in a loss
shows up as a numeric mismatch.
"""
import math

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo import ConfigError

# ----------------------------------------------------------------------------- references


def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    z = sum(e)
    return [x / z for x in e]


def kl(p, q):
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q) if pi > 0)


def ce_ref(s, y, smoothing=0.0):
    total = 0.0
    for row, label in zip(s, y):
        logp = [math.log(p) for p in softmax(list(row))]
        total += -(1 - smoothing) * logp[label] - smoothing * sum(logp) / len(row)
    return total / len(s)


def zscore_rows(z):
    out = []
    for row in z:
        c = len(row)
        m = sum(row) / c
        sd = math.sqrt(sum((v - m) ** 2 for v in row) / (c - 1))
        out.append([(v - m) / (sd + 1e-7) for v in row])
    return np.array(out)


def ramp(epoch, warmup):
    return 1.0 if warmup <= 0 else min(epoch / warmup, 1.0)


def ref_ce(s, t, y, epoch, ce_weight=1.0, label_smoothing=0.0):
    return {"ce": ce_weight * ce_ref(s, y, label_smoothing)}


def ref_kd(s, t, y, epoch, temperature, ce_weight, kd_weight, standardize):
    ce = ce_ref(s, y)
    if standardize:
        s, t = zscore_rows(s), zscore_rows(t)
    T = temperature
    d = sum(kl(softmax([v / T for v in tr]), softmax([v / T for v in sr])) for sr, tr in zip(s, t)) / len(s)
    return {"ce": ce_weight * ce, "kd": kd_weight * T * T * d}


def binary(row, k, T):
    p = softmax([v / T for v in row])
    return [p[k], sum(p[c] for c in range(len(row)) if c != k)]


def ref_dkd(s, t, y, epoch, temperature, ce_weight, alpha, beta, warmup, standardize):
    ce = ce_ref(s, y)
    if standardize:
        s, t = zscore_rows(s), zscore_rows(t)
    T, n = temperature, len(s)
    tckd = nckd = 0.0
    for i in range(n):
        tckd += kl(binary(t[i], y[i], T), binary(s[i], y[i], T))
        others = [c for c in range(len(s[i])) if c != y[i]]
        nckd += kl(softmax([t[i][c] / T for c in others]), softmax([s[i][c] / T for c in others]))
    w = ramp(epoch, warmup) * T * T / n
    return {"ce": ce_weight * ce, "tckd": w * alpha * tckd, "nckd": w * beta * nckd}


def pearson(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    du, dv = [x - mu for x in u], [x - mv for x in v]
    num = sum(a * b for a, b in zip(du, dv))
    return num / (math.sqrt(sum(a * a for a in du)) * math.sqrt(sum(b * b for b in dv)) + 1e-8)


def ref_dist(s, t, y, epoch, temperature, ce_weight, beta, gamma):
    T, n, c = temperature, len(s), len(s[0])
    ps = [softmax([v / T for v in row]) for row in s]
    pt = [softmax([v / T for v in row]) for row in t]
    inter = 1 - sum(pearson(ps[i], pt[i]) for i in range(n)) / n
    intra = 1 - sum(pearson([ps[i][k] for i in range(n)], [pt[i][k] for i in range(n)]) for k in range(c)) / c
    return {"ce": ce_weight * ce_ref(s, y), "inter": T * T * beta * inter, "intra": T * T * gamma * intra}


def ref_rld(s, t, y, epoch, temperature, scd_temperature, ce_weight, alpha, beta, warmup, standardize):
    ce = ce_ref(s, y)
    if standardize:
        s, t = zscore_rows(s), zscore_rows(t)
    T = temperature
    Ts = T if scd_temperature is None else scd_temperature
    n = len(s)
    scd = mcd = 0.0
    for i in range(n):
        m = max(range(len(t[i])), key=lambda c: t[i][c])
        scd += kl(binary(t[i], m, Ts), binary(s[i], y[i], Ts))
        kept = [c for c in range(len(t[i])) if t[i][c] < t[i][y[i]]]
        if kept:
            mcd += kl(softmax([t[i][c] / T for c in kept]), softmax([s[i][c] / T for c in kept]))
    f = ramp(epoch, warmup)
    return {"ce": ce_weight * ce, "scd": f * alpha * Ts * Ts * scd / n, "mcd": f * beta * T * T * mcd / n}


def unit(vec, centre):
    if centre:
        m = sum(vec) / len(vec)
        vec = [v - m for v in vec]
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / (norm + 1e-8) for v in vec]


def info_nce(sim):
    return sum(-math.log(softmax(row)[i]) for i, row in enumerate(sim)) / len(sim)


def ref_mcld(s, t, y, epoch, tau, ce_weight, w_ins, w_sam, w_cat, warmup, target_mask, normalize):
    n, c = len(s), len(s[0])
    centre = normalize == "zscore"
    out = {"ce": ce_weight * ce_ref(s, y)}
    if n == 1:
        return {**out, "ins": 0.0, "sam": 0.0, "cat": 0.0}

    def rows(z):  # each row normalized over its non-target entries (label entry 0) or over all
        res = []
        for i in range(n):
            idx = [k for k in range(c) if not (target_mask and k == y[i])]
            vals = unit([z[i][k] for k in idx], centre)
            full = [0.0] * c
            for k, v in zip(idx, vals):
                full[k] = v
            res.append(full)
        return res

    a, b = rows(s), rows(t)
    sim = [[sum(a[i][k] * b[j][k] for k in range(c)) / tau for j in range(n)] for i in range(n)]
    sim_t = [[sim[j][i] for j in range(n)] for i in range(n)]
    ra = [unit(list(r), centre) for r in s]
    rb = [unit(list(r), centre) for r in t]
    u = [unit([ra[i][k] for i in range(n)], centre) for k in range(c)]  # columns
    v = [unit([rb[i][k] for i in range(n)], centre) for k in range(c)]
    cat = [[sum(u[k][i] * v[d][i] for i in range(n)) / tau for d in range(c)] for k in range(c)]
    return {**out, "ins": w_ins * info_nce(sim), "sam": w_sam * info_nce(sim_t),
            "cat": ramp(epoch, warmup) * w_cat * info_nce(cat)}


def ref_mse(s, t, y, epoch, ce_weight, mse_weight):
    sq = [(a - b) ** 2 for rs, rt in zip(s, t) for a, b in zip(rs, rt)]
    return {"ce": ce_weight * ce_ref(s, y), "mse": mse_weight * sum(sq) / len(sq)}


# The papers' defaults, written out here independently of the code.
DEFAULTS = {
    "ce": dict(ce_weight=1.0, label_smoothing=0.0),
    "kd": dict(temperature=4.0, ce_weight=0.1, kd_weight=0.9, standardize=False),
    "kd+ls": dict(temperature=2.0, ce_weight=0.1, kd_weight=9.0, standardize=True),
    "dkd": dict(temperature=4.0, ce_weight=1.0, alpha=1.0, beta=8.0, warmup=20, standardize=False),
    "dkd+ls": dict(temperature=2.0, ce_weight=1.0, alpha=9.0, beta=72.0, warmup=20, standardize=True),
    "dist": dict(temperature=4.0, ce_weight=1.0, beta=2.0, gamma=2.0),
    "rld": dict(temperature=4.0, scd_temperature=None, ce_weight=1.0, alpha=1.0, beta=8.0, warmup=20,
                standardize=False),
    "rld+ls": dict(temperature=2.0, scd_temperature=None, ce_weight=1.0, alpha=9.0, beta=72.0, warmup=20,
                   standardize=True),
    "mcld": dict(tau=1.0, ce_weight=1.0, w_ins=0.25, w_sam=0.25, w_cat=0.25, warmup=20, target_mask=True,
                 normalize="zscore"),
    "mse": dict(ce_weight=1.0, mse_weight=1.0),
}
REFS = {"ce": ref_ce, "kd": ref_kd, "kd+ls": ref_kd, "dkd": ref_dkd, "dkd+ls": ref_dkd, "dist": ref_dist,
        "rld": ref_rld, "rld+ls": ref_rld, "mcld": ref_mcld, "mse": ref_mse}
REQUIRES = {"ce": "none", "kd": "label", "kd+ls": "label", "dkd": "probs", "dkd+ls": "probs", "dist": "probs",
            "rld": "probs", "rld+ls": "probs", "mcld": "probs", "mse": "logits"}

# Non-default settings (temperature, weights, warm-up) for each loss.
OVERRIDES = {
    "ce": [dict(ce_weight=0.7, label_smoothing=0.1)],
    "kd": [dict(temperature=2.5, ce_weight=1.0, kd_weight=3.0), dict(temperature=3.0, standardize=True)],
    "dkd": [dict(temperature=2.0, ce_weight=0.5, alpha=2.0, beta=3.0, warmup=5),
            dict(temperature=1.0, beta=0.5, warmup=1, standardize=True)],
    "dist": [dict(temperature=1.5, ce_weight=0.3, beta=1.0, gamma=3.0)],
    "rld": [dict(temperature=3.0, scd_temperature=1.0, ce_weight=0.5, alpha=2.0, beta=6.0, warmup=10),
            dict(temperature=1.0, warmup=0, standardize=True)],
    "mcld": [dict(tau=0.5, ce_weight=0.2, w_ins=2.0, w_sam=0.5, w_cat=3.0, warmup=4, target_mask=False),
             dict(tau=0.2, normalize="l2"), dict(normalize="l2", target_mask=False, warmup=0)],
    "mse": [dict(ce_weight=0.0, mse_weight=2.5)],
}

# ----------------------------------------------------------------------------- data

# Teacher wrong on sample 1 (argmax 1, label 2) and sample 3 (argmax 0), a tie for
# the top class on sample 2 (classes 1 and 2, label 1) and a constant row on sample 3.
S_SMALL = [[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4], [-3.0, 1.0, 1.0, 2.5], [0.3, -0.2, 1.5, 0.7],
           [1.0, 2.0, -1.0, 0.0]]
T_SMALL = [[3.0, 0.0, -1.0, 1.0], [0.5, 2.0, 1.0, -1.0], [0.0, 4.0, 4.0, 0.5], [1.0, 1.0, 1.0, 1.0],
           [2.5, -0.5, 1.0, 2.0]]
Y_SMALL = [0, 2, 1, 3, 3]


def _random_case(n, c, seed, wrong):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    t = rng.normal(0, 2, (n, c))
    for i in range(n):  # a right teacher except on the first `wrong` samples
        t[i, y[i]] = t[i].max() + 1.0 if i >= wrong else t[i].min() + 0.5
    s = t * 0.5 + rng.normal(0, 1.5, (n, c))
    return s.round(3).tolist(), t.round(3).tolist(), [int(v) for v in y]


CASES = {
    "small": (S_SMALL, T_SMALL, Y_SMALL),
    "c2": ([[1.0, -0.5], [0.2, 0.9], [-1.0, 2.0]], [[2.0, -1.0], [1.5, 0.5], [0.3, 0.3]], [0, 1, 1]),
    "c100": _random_case(6, 100, 0, wrong=2),
    "n1": ([[0.5, -1.0, 2.0, 0.0, 1.0]], [[1.0, 0.0, 3.0, -2.0, 2.5]], [4]),
}


def tensors(case):
    s, t, y = CASES[case]
    return torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.float32), torch.tensor(y)


def settings():
    for name, base in DEFAULTS.items():
        yield name, {}
        for ov in OVERRIDES.get(name, []):
            yield name, ov


def applicable(name, hp, case):
    """mcld with target_mask refuses C=2 (tested below as an error)."""
    full = {**DEFAULTS[name], **hp}
    return not (name == "mcld" and full["target_mask"] and case == "c2")


def compare(out, ref):
    assert set(out) == set(ref)
    for k, v in ref.items():
        assert out[k].item() == pytest.approx(v, abs=1e-5, rel=1e-5), k  # float32 inside the loss


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name,hp", list(settings()), ids=lambda x: x if isinstance(x, str) else
                         ",".join(f"{k}={v}" for k, v in x.items()) or "defaults")
@pytest.mark.parametrize("epoch", [3, 25])
def test_matches_reference(name, hp, case, epoch):
    if not applicable(name, hp, case):
        pytest.skip("refused configuration, see test_mcld_target_mask_needs_three_classes")
    s, t, y = tensors(case)
    s.requires_grad_(True)
    out = kdzoo.build_loss(name, **hp)(s, t, y, epoch=epoch)
    compare(out, REFS[name](*CASES[case], epoch=epoch, **{**DEFAULTS[name], **hp}))
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all()


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_registered_defaults_and_access(name):
    info = kdzoo.loss_info(name)
    assert {k: info["defaults"][k] for k in DEFAULTS[name]} == DEFAULTS[name]
    assert info["requires"] == REQUIRES[name]
    assert info["paper"] and (name == "ce" or info["arxiv"])


def test_mcld_l2_instance_needs_logits():
    assert kdzoo.build_loss("mcld", normalize="l2").requires == "logits"
    assert kdzoo.build_loss("mcld").requires == "probs"


@pytest.mark.parametrize("name,hp,warmed", [
    ("dkd", {}, ("tckd", "nckd")), ("dkd+ls", {}, ("tckd", "nckd")), ("rld", {}, ("scd", "mcd")),
    ("rld+ls", {}, ("scd", "mcd")), ("mcld", {}, ("cat",)), ("dkd", dict(warmup=4), ("tckd", "nckd"))])
def test_warmup_factor(name, hp, warmed):
    s, t, y = tensors("small")
    loss = kdzoo.build_loss(name, **hp)
    warmup = {**DEFAULTS[name], **hp}["warmup"]
    first, full, later = (loss(s, t, y, epoch=e) for e in (1, warmup, 2 * warmup + 3))
    for k in full:
        assert full[k].item() > 0, k
        ratio = 1.0 / warmup if k in warmed else 1.0
        assert first[k].item() == pytest.approx(ratio * full[k].item(), rel=1e-6), k
        assert later[k].item() == pytest.approx(full[k].item(), rel=1e-6), k
    if warmup == 20:  # epoch 1 of 20: 1/20 of the epoch-20 value
        assert first[warmed[0]].item() == pytest.approx(full[warmed[0]].item() / 20, rel=1e-6)


# (at their defaults every loss is checked by tests/test_loss_contract.py)
@pytest.mark.parametrize("name,hp", [("mcld", dict(target_mask=False)), ("rld", dict(scd_temperature=1.0))])
@pytest.mark.parametrize("case", ["small", "c100"])
def test_log_probs_as_teacher_give_same_value(name, hp, case):
    s, t, y = tensors(case)
    loss = kdzoo.build_loss(name, **hp)
    a, b = loss(s, t, y, epoch=7), loss(s, torch.log_softmax(t, dim=1), y, epoch=7)
    for k in a:
        assert b[k].item() == pytest.approx(a[k].item(), abs=1e-5, rel=1e-5), k


@pytest.mark.parametrize("name,hp", [("mcld", dict(normalize="l2"))])
def test_logit_dependent_losses_change_with_log_probs(name, hp):
    s, t, y = tensors("small")
    loss = kdzoo.build_loss(name, **hp)
    a, b = loss(s, t, y), loss(s, torch.log_softmax(t, dim=1), y)
    assert max(abs(a[k].item() - b[k].item()) for k in a) > 1e-2


@pytest.mark.parametrize("hp", [{}, dict(temperature=2.0, alpha=3.0, beta=5.0, warmup=5, standardize=True)])
def test_rld_equals_dkd_when_teacher_always_right(hp):
    # every teacher row has its unique maximum at the label: SCD = TCKD and MCD = NCKD
    s, t, y = tensors("c100")
    t = t.clone()
    t[torch.arange(len(y)), y] = t.max(dim=1).values + 1.0
    r = kdzoo.build_loss("rld", **hp)(s, t, y, epoch=3)
    d = kdzoo.build_loss("dkd", **hp)(s, t, y, epoch=3)
    assert r["scd"].item() == pytest.approx(d["tckd"].item(), rel=1e-5)
    assert r["mcd"].item() == pytest.approx(d["nckd"].item(), rel=1e-5)
    # ...and not when the teacher is wrong on some samples
    s, t, y = tensors("c100")
    r, d = kdzoo.build_loss("rld", **hp)(s, t, y, epoch=3), kdzoo.build_loss("dkd", **hp)(s, t, y, epoch=3)
    assert abs(r["mcd"].item() - d["nckd"].item()) > 1e-3


def test_rld_mask_includes_ties_and_skips_fully_masked_rows():
    # label 1 ties with class 2 (masked), class 0 and 3 are below: MCD over {0, 3} only
    s = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    t = torch.tensor([[0.0, 4.0, 4.0, 1.0]])
    out = kdzoo.build_loss("rld", temperature=1.0, alpha=0.0)(s, t, torch.tensor([1]), epoch=20)
    p, q = softmax([0.0, 1.0]), softmax([0.0, 2.0])
    assert out["mcd"].item() == pytest.approx(8 * kl(p, q), abs=1e-6)
    # the label is the teacher's minimum: nothing left, MCD is 0 (not NaN)
    out = kdzoo.build_loss("rld")(s, t, torch.tensor([0]), epoch=20)
    assert out["mcd"].item() == 0.0


def test_batch_of_one():
    s, t, y = tensors("n1")
    s.requires_grad_(True)
    out = kdzoo.build_loss("dist")(s, t, y)
    assert out["intra"].item() == pytest.approx(16 * 2.0)  # a one-sample column has Pearson 0
    out = kdzoo.build_loss("mcld")(s, t, y, epoch=20)
    assert [out[k].item() for k in ("ins", "sam", "cat")] == [0.0, 0.0, 0.0]
    assert all(out[k].requires_grad for k in out)
    sum(out.values()).backward()
    assert torch.isfinite(s.grad).all()


def test_mcld_target_mask_needs_three_classes():
    s, t, y = tensors("c2")
    with pytest.raises(ConfigError, match="target_mask"):
        kdzoo.build_loss("mcld")(s, t, y)


@pytest.mark.parametrize("name", ["dkd", "dist", "rld", "mcld"])
def test_single_class_is_an_error(name):
    with pytest.raises(ConfigError, match="at least"):
        kdzoo.build_loss(name)(torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("name,hp,match", [
    ("dkd", dict(temperature=0), "temperature"), ("dkd", dict(warmup=-1), "warmup"),
    ("dist", dict(temperature=-1.0), "temperature"), ("rld", dict(scd_temperature=0.0), "scd_temperature"),
    ("rld", dict(temperature=0), "temperature"), ("mcld", dict(tau=0), "tau"),
    ("mcld", dict(normalize="cosine"), "normalize"), ("mcld", dict(warmup=-2), "warmup"),
    ("dkd", dict(gamma=1.0), "no hyperparameter 'gamma'")])
def test_bad_hyperparameters(name, hp, match):
    with pytest.raises(ConfigError, match=match):
        kdzoo.build_loss(name, **hp)


