"""The shared trainer: exact resume, cohort equality, divergence, schedules, access checks."""
import json

import pytest
import torch

import kdzoo
from kdzoo.data import make_loader
from kdzoo.engine import Member, Trainer, TrainConfig, learning_rate
from kdzoo.teachers import Teacher

from conftest import make_bundle


def _model(seed: int, bundle) -> torch.nn.Module:
    torch.manual_seed(seed)
    return kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes, in_channels=1)


def _teacher(bundle, access="logits"):
    torch.manual_seed(123)
    return Teacher(kdzoo.build_model("fmnist_mlp", num_classes=bundle.num_classes, in_channels=1,
                                     image_size=bundle.image_size), access=access)


def _trainer(bundle, members, teacher=None, epochs=3, **cfg):
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.1, device="cpu", **cfg)
    train = make_loader(bundle, "train", 16, train=True, seed=0)
    test = {"test": make_loader(bundle, "test", 64, train=False)}
    return Trainer(members, train, test, teacher, config, progress=False)


class Interrupt(kdzoo.DistillLoss):
    """kd that raises KeyboardInterrupt once, mid-way through ``at_epoch``."""
    requires = "label"

    def __init__(self, at_epoch: int, inner: str = "kd"):
        super().__init__()
        self.inner = kdzoo.build_loss(inner)
        self.at_epoch, self.calls = at_epoch, 0
        self.requires = self.inner.requires

    def forward(self, s, t, y, *, epoch=1, **batch):
        if epoch == self.at_epoch:
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
        return self.inner(s, t, y, epoch=epoch)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_after_interrupt_gives_identical_weights(tmp_path):
    bundle = make_bundle()
    ref = _model(0, bundle)
    _trainer(bundle, [Member("kd", ref, kdzoo.build_loss("kd"), run_dir=tmp_path / "ref")], _teacher(bundle)).fit()

    run = tmp_path / "run"
    first = _model(0, bundle)
    with pytest.raises(KeyboardInterrupt):
        _trainer(bundle, [Member("kd", first, Interrupt(at_epoch=2), run_dir=run)], _teacher(bundle)).fit()
    saved = torch.load(run / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1

    resumed = _model(99, bundle)  # different initial weights: everything must come from the checkpoint
    out = _trainer(bundle, [Member("kd", resumed, kdzoo.build_loss("kd"), run_dir=run)], _teacher(bundle)).fit()
    assert out[0].status == "finished" and out[0].epochs == 3
    assert _same_weights(resumed, ref)
    ref_metrics = [json.loads(l) for l in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    new_metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["test_top1"] for m in new_metrics] == [m["test_top1"] for m in ref_metrics]
    assert [m["train"] for m in new_metrics] == [m["train"] for m in ref_metrics]


def test_resume_with_augmentation_and_dropout_rng(tmp_path):
    """Augmentation and dropout draw random numbers: resume must restore both streams."""
    from kdzoo.data.base import Augment
    bundle = make_bundle()
    bundle.augment = Augment(crop_padding=1, flip=True)

    def model(seed):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                   torch.nn.Dropout(0.3), torch.nn.Linear(32, 4))
    ref = model(0)
    _trainer(bundle, [Member("ce", ref, kdzoo.build_loss("ce"), run_dir=tmp_path / "ref")], epochs=2).fit()
    run = tmp_path / "run"
    first = model(0)
    with pytest.raises(KeyboardInterrupt):
        _trainer(bundle, [Member("ce", first, Interrupt(2, "ce"), run_dir=run)], epochs=2).fit()
    resumed = model(5)
    _trainer(bundle, [Member("ce", resumed, kdzoo.build_loss("ce"), run_dir=run)], epochs=2).fit()
    assert _same_weights(resumed, ref)


def test_cohort_members_equal_solo_runs():
    bundle = make_bundle()
    methods = ["ce", "kd", "kd+ls"]
    solo = {}
    for name in methods:
        m = _model(0, bundle)
        _trainer(bundle, [Member(name, m, kdzoo.build_loss(name))], _teacher(bundle), epochs=2).fit()
        solo[name] = m
    cohort = [Member(name, _model(0, bundle), kdzoo.build_loss(name)) for name in methods]
    results = _trainer(bundle, cohort, _teacher(bundle), epochs=2).fit()
    for member, result in zip(cohort, results):
        assert result.status == "finished"
        assert _same_weights(member.student, solo[member.name]), member.name


class NaNAfter(kdzoo.DistillLoss):
    requires = "none"

    def forward(self, s, t, y, *, epoch=1, **batch):
        ce = torch.nn.functional.cross_entropy(s, y)
        return {"ce": ce * float("nan") if epoch >= 2 else ce}


def test_nonfinite_loss_marks_run_diverged_and_cohort_goes_on(tmp_path):
    bundle = make_bundle()
    members = [Member("nan", _model(0, bundle), NaNAfter(), run_dir=tmp_path / "nan"),
               Member("ce", _model(0, bundle), kdzoo.build_loss("ce"), run_dir=tmp_path / "ce")]
    bad, good = _trainer(bundle, members, epochs=3).fit()
    assert bad.status == "diverged" and bad.epochs == 1 and "epoch 2" in bad.message
    assert good.status == "finished" and good.epochs == 3
    # the last good checkpoint of the diverged run is kept, never overwritten with NaN weights
    ckpt = torch.load(tmp_path / "nan" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_training_learns_and_counts_teacher_queries():
    bundle = make_bundle()
    teacher = _teacher(bundle)
    m = Member("kd", _model(0, bundle), kdzoo.build_loss("kd"))
    # augmentation off: responses are cached, one query per training image
    (r,) = _trainer(bundle, [m], teacher, epochs=8).fit()
    assert r.status == "finished"
    assert r.teacher_queries == len(bundle.train) == teacher.queries
    m2 = Member("kd", _model(0, bundle), kdzoo.build_loss("kd"))
    (r2,) = _trainer(bundle, [m2], _teacher(bundle), epochs=2, cache_teacher=False).fit()
    assert r2.teacher_queries == 2 * len(bundle.train)
    ce = Member("ce", _model(0, bundle), kdzoo.build_loss("ce"))
    (r3,) = _trainer(bundle, [ce], epochs=8).fit()
    assert r3.top1 > 60.0  # 4 balanced classes: chance is 25%


def test_loss_needing_more_access_is_refused_before_training():
    bundle = make_bundle()

    class NeedsLogits(kdzoo.DistillLoss):
        requires = "logits"

        def forward(self, s, t, y, *, epoch=1, **batch):  # pragma: no cover - never reached
            raise AssertionError("trained despite refusal")

    m = Member("needs_logits", _model(0, bundle), NeedsLogits())
    with pytest.raises(kdzoo.AccessError, match="needs teacher access 'logits'.*'probs'"):
        _trainer(bundle, [m], _teacher(bundle, access="probs")).fit()


def test_learning_rate_schedules():
    cfg = TrainConfig(epochs=10, lr=1.0, schedule="cosine", warmup_epochs=2)
    assert learning_rate(cfg, 1.0) == pytest.approx(0.5)
    assert learning_rate(cfg, 2.0) == pytest.approx(1.0)
    assert learning_rate(cfg, 6.0) == pytest.approx(0.5)
    assert learning_rate(cfg, 10.0) == pytest.approx(0.0, abs=1e-12)
    step = TrainConfig(epochs=240, lr=0.05, schedule="step", milestones=[150, 180, 210], gamma=0.1)
    assert learning_rate(step, 149.9) == pytest.approx(0.05)
    assert learning_rate(step, 150.0) == pytest.approx(0.005)
    assert learning_rate(step, 215.0) == pytest.approx(0.05 * 1e-3)


@pytest.mark.parametrize("bad,match", [({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"),
                                       ({"optimizer": "sdg"}, "did you mean 'sgd'"), ({"lr": 0}, "lr")])
def test_bad_train_config(bad, match):
    with pytest.raises(kdzoo.ConfigError, match=match):
        TrainConfig(**bad)


class ThreadProbe(kdzoo.DistillLoss):
    """ce that records how many torch threads each training step ran with."""
    requires = "none"

    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, student_logits, teacher_logits, target, *, epoch=1, **batch):
        self.seen.add(torch.get_num_threads())
        return {"ce": torch.nn.functional.cross_entropy(student_logits, target)}


@pytest.mark.parametrize("cpu_threads", [1, 3])
def test_cpu_threads_are_a_run_setting_not_the_callers(cpu_threads):
    """On a CPU the thread count changes the numbers, so training uses the config's count whatever
    the calling process (a --workers pool, a notebook) had set, and puts the caller's back after."""
    bundle = make_bundle()
    probe = ThreadProbe()
    before = torch.get_num_threads()
    other = 2 if cpu_threads != 2 else 1
    torch.set_num_threads(other)
    try:
        (r,) = _trainer(bundle, [Member("ce", _model(0, bundle), probe)], epochs=1, cpu_threads=cpu_threads).fit()
        assert r.status == "finished"
        assert probe.seen == {cpu_threads}
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_cpu_threads_must_be_positive():
    with pytest.raises(kdzoo.ConfigError, match="cpu_threads must be a positive integer"):
        TrainConfig(cpu_threads=0)


# ---------------------------------------------------------------- EMA of the weights
class RecordingMember(Member):
    """Keeps a copy of the student's weights after every optimizer step (nothing else changes)."""
    def update_ema(self, decay):
        self.__dict__.setdefault("snapshots", []).append({k: v.clone() for k, v in self.student.state_dict().items()})
        super().update_ema(decay)


def test_ema_of_the_weights_equals_a_plain_moving_average_and_is_what_is_evaluated():
    bundle = make_bundle()
    decay = 0.8
    student = _model(0, bundle)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    config = TrainConfig(epochs=2, batch_size=16, lr=0.1, device="cpu", ema_decay=decay)
    trainer = Trainer([RecordingMember("ce", student, kdzoo.build_loss("ce"))],
                      make_loader(bundle, "train", 16, train=True, seed=0),
                      {"test": make_loader(bundle, "test", 64, train=False)}, None, config, progress=False)
    (r,) = trainer.fit()
    m = trainer.members[0]
    snapshots = m.snapshots
    assert len(snapshots) == 2 * len(bundle.train) // 16
    expected = {}
    for k, v0 in start.items():
        if not v0.is_floating_point():   # BatchNorm's step counter is the student's own
            expected[k] = snapshots[-1][k]
            continue
        e = v0.double()
        for snap in snapshots:
            e = decay * e + (1 - decay) * snap[k].double()
        expected[k] = e
    got = m.ema.state_dict()
    for k, v in expected.items():
        torch.testing.assert_close(got[k].double(), v.double(), rtol=1e-5, atol=1e-6, msg=k)
    first = next(iter(start))   # the first conv's weight: the average is not the last weights
    assert not torch.equal(got[first], student.state_dict()[first])
    # the run is judged by the averaged weights
    from kdzoo.engine import evaluate
    assert r.top1 == evaluate(m.ema, make_loader(bundle, "test", 64, train=False))["top1"]
    assert m.evaluated is m.ema


def test_ema_resumes_exactly(tmp_path):
    bundle = make_bundle()
    ref = Member("kd", _model(0, bundle), kdzoo.build_loss("kd"), run_dir=tmp_path / "ref")
    _trainer(bundle, [ref], _teacher(bundle), ema_decay=0.9).fit()
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _trainer(bundle, [Member("kd", _model(0, bundle), Interrupt(at_epoch=2), run_dir=run)], _teacher(bundle),
                 ema_decay=0.9).fit()
    resumed = Member("kd", _model(99, bundle), kdzoo.build_loss("kd"), run_dir=run)
    (r,) = _trainer(bundle, [resumed], _teacher(bundle), ema_decay=0.9).fit()
    assert r.status == "finished" and _same_weights(resumed.ema, ref.ema) and _same_weights(resumed.student,
                                                                                           ref.student)
    assert r.top1 == ref.result.top1


def test_ema_decay_must_be_below_one():
    with pytest.raises(kdzoo.ConfigError, match=r"ema_decay must be in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)


def test_a_run_with_ema_saves_the_averaged_weights(tmp_path):
    from kdzoo.bench.execution.run import execute
    from kdzoo.bench.spec import RunSpec
    kdzoo.register_dataset("ema-synth", lambda data_root=None, val_size=0, seed=0, augment=False: make_bundle(),
                           overwrite=True)
    spec = RunSpec(dataset="ema-synth", student="fmnist_cnn_tiny", method="ce",
                   train=TrainConfig(epochs=2, batch_size=16, device="cpu", ema_decay=0.9))
    r = execute(spec, tmp_path / "run", progress=False)
    assert r["status"] == "finished"
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in ckpt["ema"].items())
    assert not all(torch.equal(saved[k], v) for k, v in ckpt["model"].items())


def test_best_epoch_is_chosen_on_validation_and_the_test_split_is_only_read_there():
    """With a validation split the record names the epoch of the best validation top-1 (the first, on ties) and
    the test top-1 at that epoch, next to the last epoch and the (optimistic) best test epoch; without one the
    new fields stay empty."""
    bundle = make_bundle()
    m = Member("ce", _model(0, bundle), kdzoo.build_loss("ce"))
    config = TrainConfig(epochs=5, batch_size=16, lr=0.1, device="cpu")
    evals = {"val": make_loader(bundle, "train", 64, train=False), "test": make_loader(bundle, "test", 64, train=False)}
    (r,) = Trainer([m], make_loader(bundle, "train", 16, train=True, seed=0), evals, None, config,
                   progress=False).fit()
    val = [rec["val_top1"] for rec in m.metrics]
    test = [rec["test_top1"] for rec in m.metrics]
    best = val.index(max(val))
    assert (r.best_val_epoch, r.best_val_top1, r.top1_at_best_val) == (best + 1, val[best], test[best])
    assert r.val_top1 == val[-1] and r.top1 == test[-1] and r.best_top1 == max(test)
    assert len(set(val)) > 1   # the epochs differ, so the choice is not vacuous
    m2 = Member("ce", _model(0, bundle), kdzoo.build_loss("ce"))
    (r2,) = _trainer(bundle, [m2], epochs=2).fit()
    assert r2.best_val_epoch == 0 and r2.top1_at_best_val != r2.top1_at_best_val
