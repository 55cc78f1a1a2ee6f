"""optimizer dot (Distillation-Oriented Trainer): equal to mdistiller's, usable with any loss, exact resume.

Golden values: mdistiller (github.com/megvii-research/mdistiller @ a08d46f10d6102bd6e3f258ca5ac880b020ea259),
``mdistiller/engine/dot.py`` copied unmodified to /tmp/z2gold/dot/, driven as ``DOT.train_iter`` of
``mdistiller/engine/trainer.py`` (lines 271-278: zero_grad, kd.backward(retain_graph), step_kd,
zero_grad, ce.backward, step) with momenta ``momentum -/+ delta`` (lines 232-233), by
/tmp/z2gold/gold_dot.py (``python gold_dot.py``, torch 2.14.1 CPU): three steps on the toy problem
below, whose parameter ``a`` enters only the distillation term and ``b`` only the task term.
"""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import kdzoo
from kdzoo.bench.spec import RunSpec
from kdzoo.data import make_loader
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.engine.dot import DistillationOrientedSGD
from kdzoo.teachers import Teacher

from conftest import make_bundle, needs_fmnist

GOLDEN = {
    (0.1, 0.9, 0.075, 5e-4): dict(
        w=[0.432201982, 0.29879272, -0.064154215, -0.364394486, -0.323274374, -0.093566149, 0.210332364,
           0.324424088, 0.246773988, -0.121613882, -0.397930771, -0.356626183],
        a=0.2819037139415741, b=[0.10568419098854065, -0.20071257650852203, 0.04504241421818733]),
    (0.05, 0.8, 0.15, 1e-2): dict(
        w=[0.465810418, 0.304346144, -0.089081347, -0.40814662, -0.385605842, -0.099605314, 0.263362646,
           0.411773086, 0.27475211, -0.121303208, -0.425506681, -0.399392545],
        a=0.290647953748703, b=[0.10246282815933228, -0.1999358832836151, 0.04760398343205452]),
}


def _toy_terms(w, a, b, step):
    x = torch.sin(torch.arange(5 * 4, dtype=torch.float64) * 0.7).reshape(5, 4).float() * (1 + 0.1 * step)
    t = torch.cos(torch.arange(5 * 3, dtype=torch.float64) * 0.4).reshape(5, 3).float() * 2
    y = torch.tensor([0, 2, 1, 1, 0])
    s = x @ w.t()
    temp = 1 + a[0] ** 2
    kd = 0.9 * F.kl_div(F.log_softmax(s / temp, 1), F.softmax(t / temp, 1), reduction="batchmean") * temp * temp
    return {"ce": 0.1 * F.cross_entropy(s + b, y), "kd": kd}


@pytest.mark.parametrize("setting", list(GOLDEN))
def test_steps_equal_mdistillers_dot(setting):
    lr, momentum, delta, wd = setting
    w = (torch.cos(torch.arange(12, dtype=torch.float64) * 0.9).reshape(3, 4) * 0.5).float().requires_grad_(True)
    a = torch.tensor([0.3], requires_grad=True)
    b = torch.tensor([0.1, -0.2, 0.05], requires_grad=True)
    opt = DistillationOrientedSGD([w, a, b], lr=lr, momentum=momentum, delta=delta, weight_decay=wd)
    for step in range(3):
        opt.backward(_toy_terms(w, a, b, step))
        opt.step()
    gold = GOLDEN[setting]
    assert w.detach().flatten().tolist() == pytest.approx(gold["w"], abs=1e-7)
    assert a.item() == pytest.approx(gold["a"], abs=1e-7)
    assert b.detach().tolist() == pytest.approx(gold["b"], abs=1e-7)


def test_one_parameter_update_by_hand():
    """Three steps on one scalar with both gradients, written out: task momentum 0.85 (with weight
    decay), distillation momentum 0.95, buffers start at the first gradient, the step is their sum."""
    p = torch.tensor([1.0], requires_grad=True)
    opt = DistillationOrientedSGD([p], lr=0.1, momentum=0.9, delta=0.05, weight_decay=0.5)
    value, buf_task, buf_kd = 1.0, None, None
    for _ in range(3):
        g_task = 2 * value + 0.5 * value       # d(p^2)/dp plus weight decay
        g_kd = 3.0                             # d(3p)/dp, no weight decay
        buf_task = g_task if buf_task is None else 0.85 * buf_task + g_task
        buf_kd = g_kd if buf_kd is None else 0.95 * buf_kd + g_kd
        opt.backward({"ce": p[0] ** 2, "kd": 3 * p[0]})
        opt.step()
        value = value - 0.1 * buf_task - 0.1 * buf_kd
        assert p.item() == pytest.approx(value, rel=1e-6)


# ----------------------------------------------------------------------------- through the trainer
def _model(seed, bundle):
    torch.manual_seed(seed)
    return kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes, in_channels=1)


def _fit(bundle, members, epochs=2, **cfg):
    torch.manual_seed(123)
    teacher = Teacher(kdzoo.build_model("fmnist_mlp", num_classes=bundle.num_classes, in_channels=1,
                                        image_size=bundle.image_size))
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.1, device="cpu", **cfg)
    return Trainer(members, make_loader(bundle, "train", 16, train=True, seed=0),
                   {"test": make_loader(bundle, "test", 64, train=False)}, teacher, config, progress=False).fit()


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_dot_changes_training_and_cohort_equals_solo():
    bundle = make_bundle()
    names = ["kd", "dkd", "ctkd"]
    solo = {n: Member(n, _model(0, bundle), kdzoo.build_loss(n)) for n in names}
    for m in solo.values():
        assert _fit(bundle, [m], optimizer="dot")[0].status == "finished"
    sgd = Member("kd", _model(0, bundle), kdzoo.build_loss("kd"))
    _fit(bundle, [sgd])
    assert not _same(sgd.student, solo["kd"].student)
    cohort = [Member(n, _model(0, bundle), kdzoo.build_loss(n)) for n in names]
    _fit(bundle, cohort, optimizer="dot")
    for m in cohort:
        assert _same(m.student, solo[m.name].student), m.name
        assert _same(m.loss, solo[m.name].loss), m.name
    state = cohort[0].optimizer.state_dict()["state"]
    assert all({"momentum_buffer", "momentum_kd_buffer"} <= set(s) for s in state.values())


class StopAt(kdzoo.DistillLoss):
    requires = "label"

    def __init__(self):
        super().__init__()
        self.kd, self.calls = kdzoo.build_loss("kd"), 0

    def forward(self, s, t, y, *, epoch=1, **batch):
        if epoch == 2:
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
        return self.kd(s, t, y, epoch=epoch)


def test_dot_resumes_exactly(tmp_path):
    bundle = make_bundle()
    ref = Member("kd", _model(0, bundle), kdzoo.build_loss("kd"), run_dir=tmp_path / "ref")
    _fit(bundle, [ref], epochs=3, optimizer="dot")
    with pytest.raises(KeyboardInterrupt):
        _fit(bundle, [Member("kd", _model(0, bundle), StopAt(), run_dir=tmp_path / "run")], epochs=3,
             optimizer="dot")
    resumed = Member("kd", _model(5, bundle), kdzoo.build_loss("kd"), run_dir=tmp_path / "run")
    (r,) = _fit(bundle, [resumed], epochs=3, optimizer="dot")
    assert r.status == "finished" and _same(resumed.student, ref.student)
    assert r.top1 == ref.result.top1


def test_a_loss_without_a_task_term_is_refused():
    class OnlyKD(kdzoo.DistillLoss):
        requires = "label"

        def forward(self, s, t, y, **kw):
            return {"kd": kdzoo.build_loss("kd")(s, t, y)["kd"]}

    bundle = make_bundle()
    with pytest.raises(kdzoo.ConfigError, match="needs a loss with a 'ce' term"):
        _fit(bundle, [Member("x", _model(0, bundle), OnlyKD())], optimizer="dot")


@pytest.mark.parametrize("kw,msg", [
    (dict(dot_delta=0.2), r"must lie in \[0, 1\)"), (dict(dot_delta=-0.1), r"must lie in \[0, 1\)"),
    (dict(grad_clip=1.0), "does not support grad_clip"), (dict(amp="fp16"), "does not support amp fp16"),
    (dict(nesterov=True), "no Nesterov")])
def test_bad_settings_are_one_line_errors(kw, msg):
    with pytest.raises(kdzoo.ConfigError, match=msg):
        TrainConfig(optimizer="dot", **kw)


def test_dot_delta_without_optimizer_dot_is_refused():
    with pytest.raises(kdzoo.ConfigError, match="dot_delta is a setting of optimizer dot"):
        TrainConfig(dot_delta=0.05)


def test_dot_delta_is_hashed_only_when_set():
    base = RunSpec(dataset="fashion-mnist", student="fmnist_mlp")
    same = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", train=TrainConfig(dot_delta=0.075))
    dot = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", train=TrainConfig(optimizer="dot"))
    other = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", train=TrainConfig(optimizer="dot", dot_delta=0.05))
    assert base.config_hash() == same.config_hash()
    assert len({base.config_hash(), other.config_hash(), dot.config_hash()}) == 3


def test_without_a_distillation_term_dot_is_sgd_with_the_mean_momentum():
    """The student alone (loss ce): every parameter has only the task gradient, whose momentum is
    ((m - d) + (m + d)) / 2 = m: the same weights as torch's SGD."""
    bundle = make_bundle()
    a = Member("ce", _model(0, bundle), kdzoo.build_loss("ce"))
    b = Member("ce", _model(0, bundle), kdzoo.build_loss("ce"))
    _fit(bundle, [a], optimizer="dot")
    _fit(bundle, [b])
    for x, y in zip(a.student.state_dict().values(), b.student.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@needs_fmnist
def test_cli_trains_with_optimizer_dot(tmp_path, capsys):
    from conftest import kdzoo_main as main
    torch.manual_seed(0)
    teacher = tmp_path / "teacher" / "model.pt"
    teacher.parent.mkdir()
    torch.save(kdzoo.build_model("fmnist_mlp", num_classes=10).state_dict(), teacher)
    out = tmp_path / "run"
    rc = main(["train", "--student", "fmnist_mlp", "--teacher", "fmnist_mlp", "--teacher-ckpt", str(teacher),
               "--method", "kd", "--optimizer", "dot", "--dot-delta", "0.05", "--epochs", "1",
               "--steps-per-epoch", "3", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["optimizer"] == "dot" and config["train"]["dot_delta"] == 0.05
    state = torch.load(out / "checkpoint.pt", weights_only=False)["optimizer"]
    assert state["param_groups"][0]["momentum_task"] == pytest.approx(0.85)


def test_cli_bad_delta_is_one_line(capsys):
    from conftest import kdzoo_main as main
    rc = main(["train", "--student", "fmnist_mlp", "--optimizer", "dot", "--dot-delta", "0.5"])
    err = capsys.readouterr().err
    assert rc == 2 and "must lie in [0, 1)" in err and len(err.strip().splitlines()) == 1


def test_dot_refuses_torchrun(monkeypatch):
    import kdzoo.engine.dot as dot_module

    class Env:
        enabled = True

    monkeypatch.setattr(dot_module.distributed, "current", lambda: Env())
    with pytest.raises(kdzoo.ConfigError, match="runs on one process only"):
        DistillationOrientedSGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9, delta=0.075)
