"""Cohort training equals solo training, bit for bit, in the hard cases.

Augmentation, dropout, BatchNorm, a loss that draws its own random numbers,
several epochs, a member that diverges mid-epoch, members resumed from
different epochs, cached and uncached teachers, folder-style datasets with
random transforms, and the loaders' determinism (CPU-drawn epoch plans).
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

import kdzoo
from kdzoo.data import make_loader
from kdzoo.data.base import Augment
from kdzoo.data.loader import DatasetLoader, TensorLoader, crop_flip, epoch_plan
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.teachers import Teacher

from conftest import make_bundle

TIMING = {"seconds", "train_seconds", "images_per_second"}


def _net(seed: int) -> nn.Module:
    """Conv + BatchNorm + dropout: every kind of state and randomness a student has."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.25),
                         nn.Conv2d(6, 8, 3, padding=1, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(8, 4))


def _teacher() -> Teacher:
    torch.manual_seed(123)
    return Teacher(kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=8))


def _bundle(augment: bool = True):
    b = make_bundle()
    if augment:
        b.augment = Augment(crop_padding=1, flip=True)
    return b


def _trainer(bundle, members, *, epochs=3, teacher=True, loader=None, **cfg) -> Trainer:
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.1, device="cpu", **cfg)
    train = loader if loader is not None else make_loader(bundle, "train", 16, train=True, seed=0)
    test = {"test": make_loader(bundle, "test", 64, train=False)}
    return Trainer(members, train, test, _teacher() if teacher else None, config, progress=False)


class NoisyKD(kdzoo.DistillLoss):
    """kd on noise-perturbed teacher logits: the loss itself draws from the global RNG."""
    requires = "logits"

    def __init__(self):
        super().__init__()
        self.kd = kdzoo.build_loss("kd")

    def forward(self, s, t, y, *, epoch=1, **batch):
        return self.kd(s, t + 0.5 * torch.randn_like(t), y, epoch=epoch)


class NaNAt(kdzoo.DistillLoss):
    """Cross-entropy that turns NaN from the ``step``-th call of ``epoch`` on."""
    requires = "none"

    def __init__(self, epoch: int, step: int):
        super().__init__()
        self.at, self.step, self.calls = epoch, step, 0

    def forward(self, s, t, y, *, epoch=1, **batch):
        ce = nn.functional.cross_entropy(s, y)
        if epoch == self.at:
            self.calls += 1
        if epoch > self.at or (epoch == self.at and self.calls >= self.step):
            ce = ce * float("nan")
        return {"ce": ce}


class StopAt(kdzoo.DistillLoss):
    """Wraps a loss; raises KeyboardInterrupt at its 3rd call in epoch ``epoch`` (a killed run)."""

    def __init__(self, inner: kdzoo.DistillLoss, epoch: int):
        super().__init__()
        self.inner, self.at, self.calls = inner, epoch, 0
        self.requires = inner.requires

    def forward(self, s, t, y, *, epoch=1, **batch):
        if epoch == self.at:
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt
        return self.inner(s, t, y, epoch=epoch, **batch)


LOSSES = {"ce": lambda: kdzoo.build_loss("ce"), "kd": lambda: kdzoo.build_loss("kd"),
          "kd+ls": lambda: kdzoo.build_loss("kd+ls"), "noisy": NoisyKD}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in model.state_dict().values()]


def _assert_same_model(a: nn.Module, b: nn.Module, name: str) -> None:
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), f"{name}: {k} differs (max |diff| {(x.float() - y.float()).abs().max():.3g})"


def _result(r) -> dict:
    """A result without wall-clock fields; NaN (no validation split) compares equal to itself."""
    return {k: ("nan" if v != v else v) for k, v in r.to_dict().items() if k not in TIMING}


def _metrics(run_dir) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _solo(bundle, name, make_loss, **kw):
    model = _net(0)
    (result,) = _trainer(bundle, [Member(name, model, make_loss())], **kw).fit()
    return model, result


@pytest.mark.parametrize("order", [["ce", "kd", "kd+ls", "noisy"], ["noisy", "kd+ls", "kd", "ce"]])
def test_cohort_equals_solo_with_augmentation_dropout_bn_and_random_loss(order):
    bundle = _bundle(augment=True)  # augmentation on: the teacher is queried every step, not cached
    solo = {name: _solo(bundle, name, LOSSES[name]) for name in order}
    members = [Member(name, _net(0), LOSSES[name]()) for name in order]
    results = _trainer(bundle, members).fit()
    for m, r in zip(members, results):
        model, ref = solo[m.name]
        assert r.status == "finished" and r.epochs == 3
        _assert_same_model(m.student, model, m.name)
        assert _result(r) == _result(ref), m.name
        assert r.teacher_queries == 3 * len(bundle.train)


@pytest.mark.parametrize("channels_last", [False, True])
def test_cohort_equals_solo_with_cached_teacher(channels_last):
    bundle = _bundle(augment=False)  # no augmentation: one teacher pass, cached for every epoch
    names = ["kd", "kd+ls", "noisy"]
    solo = {n: _solo(bundle, n, LOSSES[n], epochs=2, channels_last=channels_last) for n in names}
    members = [Member(n, _net(0), LOSSES[n]()) for n in names]
    results = _trainer(bundle, members, epochs=2, channels_last=channels_last).fit()
    for m, r in zip(members, results):
        _assert_same_model(m.student, solo[m.name][0], m.name)
        assert _result(r) == _result(solo[m.name][1])
        assert r.teacher_queries == len(bundle.train)  # one cached pass, charged to every member


def test_member_diverging_mid_epoch_leaves_the_others_untouched(tmp_path):
    bundle = _bundle(augment=True)
    cfg = dict(nonfinite_check_every=2)  # 6 steps per epoch: checks at steps 2, 4, 6
    makers = {"nan": lambda: NaNAt(epoch=2, step=3), "ce": LOSSES["ce"], "noisy": LOSSES["noisy"]}
    solo = {}
    for name, make in makers.items():
        model = _net(0)
        (r,) = _trainer(bundle, [Member(name, model, make(), run_dir=tmp_path / "solo" / name)], **cfg).fit()
        solo[name] = (model, r)
    members = [Member(n, _net(0), make(), run_dir=tmp_path / "cohort" / n) for n, make in makers.items()]
    results = _trainer(bundle, members, **cfg).fit()
    by_name = dict(zip(makers, results))
    assert by_name["nan"].status == "diverged" and by_name["nan"].epochs == 1
    assert "epoch 2" in by_name["nan"].message
    for m, r in zip(members, results):
        assert _result(r) == _result(solo[m.name][1]), m.name
        if m.name != "nan":
            assert r.status == "finished"
            _assert_same_model(m.student, solo[m.name][0], m.name)
        assert _metrics(tmp_path / "cohort" / m.name) == _metrics(tmp_path / "solo" / m.name)
    # the diverged run keeps its last good (epoch 1) checkpoint, the same as when trained alone
    a = torch.load(tmp_path / "cohort" / "nan" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "solo" / "nan" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    assert all(torch.equal(x, y) for x, y in zip(a["model"].values(), b["model"].values()))


def test_members_resumed_at_different_epochs_equal_uninterrupted_solo_runs(tmp_path):
    bundle = _bundle(augment=True)
    names = ["ce", "kd", "kd+ls", "noisy"]
    ref = {}
    for n in names:  # uninterrupted solo references
        model = _net(0)
        (r,) = _trainer(bundle, [Member(n, model, LOSSES[n](), run_dir=tmp_path / "ref" / n)]).fit()
        ref[n] = (model, r)
    # kd killed in epoch 2 (checkpoint: epoch 1), kd+ls killed in epoch 3 (checkpoint: epoch 2),
    # noisy already finished (epoch 3), ce never started
    for n, stop in (("kd", 2), ("kd+ls", 3)):
        with pytest.raises(KeyboardInterrupt):
            _trainer(bundle, [Member(n, _net(0), StopAt(LOSSES[n](), stop), run_dir=tmp_path / "run" / n)]).fit()
    shutil.copytree(tmp_path / "ref" / "noisy", tmp_path / "run" / "noisy")
    assert [torch.load(tmp_path / "run" / n / "checkpoint.pt", weights_only=True)["epoch"]
            for n in ("kd", "kd+ls", "noisy")] == [1, 2, 3]

    # resumed members start from other weights: everything must come from their checkpoints
    members = [Member(n, _net(0 if n == "ce" else 7), LOSSES[n](), run_dir=tmp_path / "run" / n) for n in names]
    results = _trainer(bundle, members).fit()
    for m, r in zip(members, results):
        model, expected = ref[m.name]
        assert r.status == "finished" and r.epochs == 3, m.name
        _assert_same_model(m.student, model, m.name)
        assert _result(r) == _result(expected), m.name
        assert _metrics(tmp_path / "run" / m.name) == _metrics(tmp_path / "ref" / m.name), m.name


# ------------------------------------------------------------------ folder-style datasets


class RandomTransformDataset(torch.utils.data.Dataset):
    """Float images with a random flip and random noise drawn from torch's global RNG, like torchvision."""

    def __init__(self, split):
        self.x = (split.images.float() - 76.5) / 76.5
        self.y = split.labels

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x + 0.1 * torch.randn_like(x), int(self.y[i])


def _dataset_loader(bundle, workers=0, **kw):
    return DatasetLoader(RandomTransformDataset(bundle.train), 16, shuffle=True, seed=0, workers=workers, **kw)


def _epoch(loader, epoch):
    loader.set_epoch(epoch)
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_dataset_loader_batches_depend_only_on_seed_and_epoch():
    bundle = _bundle(augment=False)
    a = _dataset_loader(bundle)
    e1, e2 = _epoch(a, 1), _epoch(a, 2)
    fresh = _dataset_loader(bundle)  # a resumed run starts its loader at epoch 2
    assert all(torch.equal(x, y) for bx, by in zip(_epoch(fresh, 2), e2) for x, y in zip(bx, by))
    assert not torch.equal(e1[0][0], e2[0][0])
    # loading data never moves the caller's random stream
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    _epoch(fresh, 3)
    assert torch.equal(torch.rand(3), expected)


def test_dataset_loader_is_the_same_with_worker_processes():
    bundle = _bundle(augment=False)
    bundle.train = bundle.train.subset(torch.arange(40))
    ref = _epoch(_dataset_loader(bundle), 2)
    multi = _dataset_loader(bundle, workers=2)
    _epoch(multi, 1)  # persistent workers: epoch 2 is served by workers that already served epoch 1
    got = _epoch(multi, 2)
    assert len(got) == len(ref)
    assert all(torch.equal(x, y) for bx, by in zip(got, ref) for x, y in zip(bx, by))


def test_cohort_equals_solo_on_a_dataset_loader():
    bundle = _bundle(augment=False)
    names = ["ce", "kd", "noisy"]
    solo = {n: _solo(bundle, n, LOSSES[n], epochs=2, loader=_dataset_loader(bundle)) for n in names}
    members = [Member(n, _net(0), LOSSES[n]()) for n in names]
    results = _trainer(bundle, members, epochs=2, loader=_dataset_loader(bundle)).fit()
    for m, r in zip(members, results):
        _assert_same_model(m.student, solo[m.name][0], m.name)
        assert _result(r) == _result(solo[m.name][1])


# ------------------------------------------------------------------ TensorLoader determinism


def _reference_crop_flip(img: torch.Tensor, dy: int, dx: int, flip: bool, p: int) -> torch.Tensor:
    """The textbook per-image definition: zero-pad, crop, flip."""
    h, w = img.shape[-2:]
    out = nn.functional.pad(img, (p, p, p, p))[..., dy:dy + h, dx:dx + w]
    return out.flip(-1) if flip else out


@pytest.mark.parametrize("padding,flip", [(4, True), (2, False), (0, True)])
def test_batched_crop_flip_matches_per_image_definition(padding, flip):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 9, 7), generator=g, dtype=torch.uint8)
    plan = epoch_plan(20, seed=3, epoch=2, shuffle=True, augment=Augment(crop_padding=padding, flip=flip))
    idx = plan.order[:12]
    out = crop_flip(images, idx, None if plan.dy is None else plan.dy[:12], None if plan.dx is None else plan.dx[:12],
                    None if plan.flip is None else plan.flip[:12], padding)
    for j in range(12):
        dy = int(plan.dy[j]) if plan.dy is not None else 0
        dx = int(plan.dx[j]) if plan.dx is not None else 0
        want = _reference_crop_flip(images[int(idx[j])], dy, dx, bool(plan.flip[j]) if flip else False, padding)
        assert torch.equal(out[j], want), j


def test_tensor_loader_batches_follow_the_cpu_drawn_plan():
    """The loader's batches are exactly: plan (CPU generator) -> per-image crop/flip -> normalize."""
    split = make_bundle(n_train=40, channels=3).train
    aug = Augment(crop_padding=2, flip=True)
    loader = TensorLoader(split, 16, mean=(0.5,), std=(0.25,), shuffle=True, augment=aug, seed=4)
    loader.set_epoch(3)
    plan = loader.plan()
    assert all(t.device.type == "cpu" for t in (plan.order, plan.dy, plan.dx, plan.flip))
    assert torch.equal(plan.order, epoch_plan(40, 4, 3, shuffle=True, augment=aug).order)
    xs, ys, idxs = zip(*loader)
    x, y, idx = torch.cat(xs), torch.cat(ys), torch.cat(idxs)
    assert torch.equal(idx, plan.order)
    assert torch.equal(y, split.labels[plan.order])
    for j in range(40):
        raw = _reference_crop_flip(split.images[int(plan.order[j])], int(plan.dy[j]), int(plan.dx[j]),
                                   bool(plan.flip[j]), 2)
        assert torch.equal(x[j], (raw.float() - 0.5 * 255) / (0.25 * 255)), j


def test_tensor_loader_is_the_same_from_host_storage_and_channels_last():
    split = make_bundle(n_train=40, channels=3).train
    aug = Augment(crop_padding=1, flip=True)
    a = TensorLoader(split, 16, mean=(0.5,), std=(0.25,), shuffle=True, augment=aug, seed=1)
    b = TensorLoader(split, 16, mean=(0.5,), std=(0.25,), shuffle=True, augment=aug, seed=1, storage="cpu",
                     channels_last=True)
    for (xa, ya, ia), (xb, yb, ib) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and torch.equal(ia, ib)
        assert xb.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("storage", [None, "cpu"])
def test_gpu_loader_gives_the_cpu_loaders_batches(storage):  # pragma: no cover - runs only on a GPU
    split = make_bundle(n_train=100, channels=3).train
    aug = Augment(crop_padding=2, flip=True)
    cpu = TensorLoader(split, 32, mean=(0.5,), std=(0.25,), shuffle=True, augment=aug, seed=2)
    gpu = TensorLoader(split, 32, mean=(0.5,), std=(0.25,), shuffle=True, augment=aug, seed=2, device="cuda",
                       storage=storage)
    for loader in (cpu, gpu):
        loader.set_epoch(2)
    for (xc, yc, ic), (xg, yg, ig) in zip(cpu, gpu):
        assert xg.is_cuda and yg.is_cuda and ig.is_cuda
        assert torch.equal(ic, ig.cpu()) and torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu(), rtol=0, atol=1e-6)
