"""The loss contract of docs/design.md, checked on every loss kdzoo registers.

The losses come from the registry, so a new loss file under kdzoo/losses/ is covered by being
registered; no list here names a method. Properties, not values: the values are checked
against independent references in each loss's own test file (golden values, hand formulas).

Each loss is built with its defaults and gets, besides the logits, what the trainer would pass
it: ``epoch``, ``total_epochs``, the images and their indices, and the extra inputs its ``needs``
declares, made by the engine's own helpers (``StrongViews.loss_inputs`` for the strong view;
``feature_maps.teacher_inputs`` / ``student_inputs`` on two small convnets for feature maps).

- its terms are a non-empty dict of finite 0-dim float32 tensors;
- float64 and bfloat16 logits give float32 terms equal to those of the same values in float32;
- extreme logits (+-1e4) and ties (a constant row, a shared maximum) give finite terms and gradients;
- a batch of one, and two classes: finite terms, or a one-line ConfigError;
- wrong shapes, float or out-of-range labels, an empty batch: a one-line ConfigError;
- the teacher access it declares (``requires``, read from the built loss) is honoured: at its
  own level a Teacher's answer gives finite terms; at ``probs`` or below, log-probabilities (the
  logits shifted per row) give the terms of the logits; ``none`` never looks at the teacher;
  ``logits`` is needed (a per-row shift changes the value);
- trained in one cohort with every other loss it ends exactly as trained alone.

mekd and its generator baselines (gen-kd-soft, gen-ce-hard) get only the checks of their forward:
they need a generator, which their preparation stage trains (a GAN on the student-side images)
and which is replaced here by an untrained one; a loss with a preparation stage never trains in
a cohort (the trainer refuses it), and its response form (soft or one-hot) is chosen in that
stage from the teacher's level, so their access and training are tested in test_mekd.py and
test_mekd_baselines.py.
"""
from __future__ import annotations

import contextlib
import inspect
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import kdzoo
from kdzoo.data import make_loader
from kdzoo.data.base import Augment
from kdzoo.engine import Member, Trainer, TrainConfig, feature_maps
from kdzoo.engine.views import STRONG_VIEW, StrongViews
from kdzoo.losses.base import DistillLoss, has_preparation, needs_of, requirements, strong_view_of
from kdzoo.registry import LOSSES
from kdzoo.teachers import ACCESS_RANK, Teacher

from conftest import make_bundle
from test_cohort import _assert_same_model, _result

BUILTIN = [n for n in LOSSES.names() if LOSSES.entry(n).source == "kdzoo"]


def _prepares(name: str) -> bool:
    return has_preparation(LOSSES.entry(name).factory)


def _takes_labels(loss: DistillLoss) -> bool:
    """False for a loss whose ``target`` defaults to None (mekd trains on unlabeled generated images)."""
    return inspect.signature(loss.forward).parameters["target"].default is not None


TRAINABLE = [n for n in BUILTIN if not _prepares(n)]
N, C, SIZE = 6, 5, 8


class Identity(nn.Module):
    """A "teacher" whose logits are its input rows, so a Teacher's access levels apply to chosen logits."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _convnet(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return kdzoo.build_model("fmnist_cnn_tiny", num_classes=C, in_channels=1)


def build(name: str, classes: int = C) -> DistillLoss:
    loss = kdzoo.build_loss(name)
    if _prepares(name):   # mekd: an untrained generator (latent = classes) for the one its preparation stage trains
        from kdzoo.stages.dcgan import Generator
        torch.manual_seed(0)
        loss.set_generator(Generator(classes, 1, (SIZE, SIZE), 8))
    return loss


def logits(n: int = N, c: int = C, seed: int = 0, scale: float = 3.0) -> Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * scale


def labels(n: int = N, c: int = C) -> Tensor:
    return torch.arange(n) % c


def engine_inputs(loss: DistillLoss, n: int, c: int, *, scale: float = 3.0, teacher_access: str = "features",
                  strong_teacher: Tensor | None = None) -> tuple[dict, list[Tensor]]:
    """The keyword arguments the trainer passes ``loss`` besides the logits, and the student-side tensors
    among them (for gradients)."""
    x = torch.rand(n, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(n))
    extra: dict = {"epoch": 3, "total_epochs": 10, "x": x, "index": torch.arange(n)}
    student = _convnet(1)
    member = Member("m", student, loss)
    grads: list[Tensor] = []
    if STRONG_VIEW in needs_of(loss):
        s2 = logits(n, c, seed=11, scale=scale).requires_grad_(True)
        member.forward = lambda _x: s2
        t2 = strong_teacher if strong_teacher is not None else logits(n, c, seed=12, scale=scale)
        extra.update(StrongViews.loss_inputs(member, {strong_view_of(loss): {"x": x, "teacher": t2}}))
        grads.append(s2)
    if feature_maps.wants_maps(loss):
        teacher = Teacher(_convnet(2), teacher_access)
        maps = feature_maps.teacher_inputs(teacher, [member], x, 1, contextlib.nullcontext)
        out = feature_maps.student_module(student, loss)(x)
        _, more = feature_maps.student_inputs(out, member, maps)
        more["student_feature_map"] = more["student_feature_map"] * (scale / 3.0)
        more["teacher_feature_map"] = more["teacher_feature_map"] * (scale / 3.0)
        extra.update(more)
        grads.append(more["student_feature_map"])
    return extra, grads


def run(loss: DistillLoss, s: Tensor, t: Tensor | None, y: Tensor, *, shape: tuple[int, int] | None = None,
        **kw) -> tuple[dict, list[Tensor]]:
    """Terms of ``loss`` and the gradients of their sum w.r.t. the student's logits and its other inputs;
    the extra inputs are made for a batch of ``shape`` (default: the student logits' (N, C))."""
    extra, more = engine_inputs(loss, *(shape or s.shape), **kw)
    s = s.detach().requires_grad_(True)
    terms = loss(s, t, y, **extra)
    grads = torch.autograd.grad(sum(terms.values()), [s, *more], allow_unused=True)
    return terms, [g for g in grads if g is not None]


def assert_finite(name: str, terms: dict, grads: list[Tensor]) -> None:
    assert terms, f"{name}: no terms"
    for k, v in terms.items():
        assert isinstance(k, str) and isinstance(v, Tensor), (name, k)
        assert v.dim() == 0 and v.dtype == torch.float32, f"{name}: term {k} is {v.dtype} {tuple(v.shape)}"
        assert torch.isfinite(v), f"{name}: term {k} = {v.item()}"
    assert grads and all(torch.isfinite(g).all() for g in grads), f"{name}: non-finite gradient"


def finite_or_one_line_error(name: str, loss: DistillLoss, s: Tensor, t: Tensor, y: Tensor) -> None:
    try:
        terms, grads = run(loss, s, t, y)
    except kdzoo.ConfigError as err:
        assert "\n" not in str(err) and str(err), f"{name}: {err!r}"
        return
    assert_finite(name, terms, grads)


def test_every_loss_file_is_covered():
    """Each method file under kdzoo/losses registers what BUILTIN (the parametrization) lists: nothing to edit."""
    folder = Path(kdzoo.__file__).parent / "losses"
    files = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != "base"}
    covered = {LOSSES.entry(n).factory.__module__.rsplit(".", 1)[1] for n in BUILTIN}
    assert files == covered and len(BUILTIN) >= len(files)


@pytest.mark.parametrize("name", BUILTIN)
def test_terms_are_finite_float32_scalars_with_finite_gradients(name):
    loss = build(name)
    terms, grads = run(loss, logits(), logits(seed=1), labels())
    assert_finite(name, terms, grads)
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: the student gets no gradient"


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", BUILTIN)
def test_other_dtypes_are_computed_in_float32(name, dtype):
    loss = build(name)
    s, t, y = logits().to(dtype), logits(seed=1).to(dtype), labels()
    got, _ = run(loss, s, t, y)
    ref, _ = run(loss, s.float(), t.float(), y)
    assert got.keys() == ref.keys()
    for k in ref:
        assert got[k].dtype == torch.float32, (name, k, got[k].dtype)
        torch.testing.assert_close(got[k], ref[k], rtol=1e-6, atol=1e-7, msg=f"{name}: {k}")


@pytest.mark.parametrize("name", BUILTIN)
def test_extreme_logits_and_ties_stay_finite(name):
    g = torch.Generator().manual_seed(3)
    s = torch.where(torch.rand(N, C, generator=g) < 0.5, -1e4, 1e4)
    s[1] = 0.0                                             # a constant student row
    t = torch.randn(N, C, generator=g) * 1e4
    t[0] = 7.0                                             # a constant teacher row
    t[2, :2] = t[2].max() + 1.0                            # two classes share the teacher's maximum
    t[3] = torch.tensor([1e4, -1e4, 1e4, -1e4, 0.0])       # extreme and tied
    y = torch.tensor([0, 1, 1, 2, 4, 3])
    terms, grads = run(build(name), s, t, y, scale=1e4)
    assert_finite(name, terms, grads)


@pytest.mark.parametrize("n,c", [(1, C), (N, 2), (1, 2)])
@pytest.mark.parametrize("name", BUILTIN)
def test_a_batch_of_one_and_two_classes(name, n, c):
    finite_or_one_line_error(name, build(name, c), logits(n, c), logits(n, c, seed=1), labels(n, c))


@pytest.mark.parametrize("name", BUILTIN)
def test_bad_inputs_are_one_line_config_errors(name):
    loss = build(name)
    s, t, y = logits(), logits(seed=1), labels()
    cases = {"student logits not (N, C)": (s[0], t[0], y[:1]), "empty batch": (s[:0], t[:0], y[:0])}
    if _takes_labels(loss):
        cases.update({"targets of the wrong shape": (s, t, y[:, None]), "float targets": (s, t, y.float()),
                      "labels out of range": (s, t, torch.tensor([0, 1, 2, 3, 4, C])),
                      "negative labels": (s, t, torch.tensor([0, 1, -1, 3, 4, 0]))})
    if requirements(loss) != "none":
        cases["teacher of other classes"] = (s, logits(c=C + 1), y)
        cases["teacher of another batch"] = (s, logits(n=N - 1), y)
    for what, (a, b, target) in cases.items():
        with pytest.raises(kdzoo.ConfigError) as err:
            run(loss, a, b, target, shape=(N, C))
        assert str(err.value) and "\n" not in str(err.value), (name, what, str(err.value))
    if STRONG_VIEW in needs_of(loss):   # the strong view is checked like the logits
        with pytest.raises(kdzoo.ConfigError, match="differ in shape"):
            run(loss, s, t, y, strong_teacher=logits(c=C + 1))
    if needs_of(loss):                  # called without what the engine provides: one line that says so
        with pytest.raises(kdzoo.ConfigError) as err:
            loss(s, t, y)
        assert "\n" not in str(err.value)


def _teacher_says(level: str, z: Tensor) -> Tensor:
    return Teacher(Identity(), level)(z)


@pytest.mark.parametrize("name", TRAINABLE)
def test_the_declared_teacher_access_is_honoured(name):
    loss = build(name)
    level = requirements(loss)
    s, z, y = logits(), logits(seed=1, scale=4.0), labels()
    z2 = logits(seed=12, scale=4.0)   # the teacher's logits on the strong view, when the loss has one

    def terms(teacher: Tensor | None, strong: Tensor | None = None) -> dict:
        return run(loss, s, teacher, y, strong_teacher=strong)[0]

    plain = terms(z, z2)
    if level != "none":   # at its own level a Teacher's answer is enough
        assert_finite(name, terms(_teacher_says(level, z), _teacher_says(level, z2)), [torch.zeros(1)])
    if ACCESS_RANK[level] <= ACCESS_RANK["probs"]:
        shifted = terms(_teacher_says("probs", z), _teacher_says("probs", z2))   # log-probabilities
        assert shifted.keys() == plain.keys()
        for k in plain:
            torch.testing.assert_close(shifted[k], plain[k], rtol=1e-4, atol=1e-5, msg=f"{name}: {k}")
    if level == "none":
        other = terms(logits(seed=5), logits(seed=6))
        assert all(torch.equal(other[k], plain[k]) for k in plain), name
        assert all(torch.equal(v, plain[k]) for k, v in terms(None).items()), name
    if level == "logits":   # declared no weaker than it is: a per-row shift changes the value
        shifted = terms(_teacher_says("probs", z), _teacher_says("probs", z2))
        assert any(not torch.allclose(shifted[k], plain[k], rtol=1e-3) for k in plain), name


def _trainer(members: list[Member], bundle) -> Trainer:
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, device="cpu")
    torch.manual_seed(123)
    teacher = Teacher(kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=1), "features")
    return Trainer(members, make_loader(bundle, "train", 16, train=True, seed=0),
                   {"test": make_loader(bundle, "test", 64, train=False)}, teacher, config, bundle=bundle,
                   progress=False)


def _student() -> nn.Module:
    torch.manual_seed(0)
    return kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=1)


def test_every_loss_trained_in_one_cohort_ends_as_trained_alone():
    """All trainable losses in one cohort (one teacher forward per batch, shared strong views and teacher
    maps) against each trained alone: 2 epochs of 3 augmented batches, teacher at access ``features``."""
    bundle = make_bundle(n_train=48, n_test=16)
    bundle.augment = Augment(crop_padding=1, flip=True)
    members = [Member(n, _student(), kdzoo.build_loss(n)) for n in TRAINABLE]
    together = _trainer(members, bundle).fit()
    for m, r in zip(members, together):
        alone = Member(m.name, _student(), kdzoo.build_loss(m.name))
        (solo,) = _trainer([alone], bundle).fit()
        assert r.status == solo.status == "finished", (m.name, r.message, solo.message)
        assert _result(r) == _result(solo), m.name
        assert [_strip(x) for x in m.metrics] == [_strip(x) for x in alone.metrics], m.name
        _assert_same_model(m.student, alone.student, m.name)
        _assert_same_model(m.loss, alone.loss, m.name)   # a loss's own state (CTKD's temperature) too


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}
