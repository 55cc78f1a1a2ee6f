"""The strong view (losses declaring ``needs = {"strong_view"}``): how it is made, who pays, and that
cohort, solo and resumed runs give the same results while members that do not use it are untouched."""
from __future__ import annotations


import pytest
import torch
from torchvision.transforms import v2

import kdzoo
from kdzoo.data import make_loader
from kdzoo.engine import Member
from kdzoo.engine.views import STRONG_VIEW, StrongViews, strong_view, view_seed
from kdzoo.errors import ConfigError

from conftest import FMNIST
from test_cohort import StopAt, _assert_same_model, _bundle, _metrics, _net, _result, _trainer

TWO_VIEW_LOSSES = ["mlkd", "mlkd+ls", "crld"]


def test_the_two_view_losses_declare_the_strong_view():
    for name in TWO_VIEW_LOSSES:
        assert STRONG_VIEW in kdzoo.build_loss(name).needs
    assert not kdzoo.build_loss("kd").needs


def test_strong_view_is_randaugment_2_10_of_the_loaders_uint8_images():
    bundle = _bundle(augment=False)
    loader = make_loader(bundle, "train", 16, train=True, seed=0)
    x, _y, idx = next(iter(loader))
    seed = view_seed(0, 1, 0)
    got = strong_view(x, loader.mean, loader.std, seed)
    # independently: torchvision's RandAugment on the stored pixels, under the same global seed
    pixels = bundle.train.images[idx]
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    ref = torch.stack([v2.RandAugment(num_ops=2, magnitude=10)(img) for img in pixels])
    torch.set_rng_state(state)
    expected = (ref.float() - loader.mean) / loader.std
    assert torch.equal(got, expected)
    assert not torch.equal(got, x)  # it does change the images


def test_strong_view_leaves_the_global_rng_alone_and_depends_only_on_its_seed():
    x = torch.randn(8, 1, 8, 8)
    mean, std = torch.full((1, 1, 1, 1), 76.5), torch.full((1, 1, 1, 1), 76.5)
    before = torch.get_rng_state()
    a = strong_view(x, mean, std, 5)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, strong_view(x, mean, std, 5))
    assert not torch.equal(a, strong_view(x, mean, std, 6))
    assert len({view_seed(0, e, s) for e in range(1, 4) for s in range(50)}) == 150


@pytest.mark.parametrize("augment", [True, False])
def test_cohort_with_two_view_losses_equals_solo_runs_and_kd_is_untouched(augment):
    bundle = _bundle(augment=augment)  # without augmentation the weak view's teacher answers are cached
    names = ["kd", *TWO_VIEW_LOSSES]
    solo = {}
    for n in names:
        model = _net(0)
        (r,) = _trainer(bundle, [Member(n, model, kdzoo.build_loss(n))], epochs=2).fit()
        solo[n] = (model, r)
    members = [Member(n, _net(0), kdzoo.build_loss(n)) for n in names]
    results = _trainer(bundle, members, epochs=2).fit()
    for m, r in zip(members, results):
        assert r.status == "finished", r.message
        _assert_same_model(m.student, solo[m.name][0], m.name)
        assert _result(r) == _result(solo[m.name][1]), m.name
    # kd alone in a run without any two-view loss: the same weights (nothing leaks from the feature)
    _trainer(bundle, [Member("kd", model := _net(0), kdzoo.build_loss("kd"))], epochs=2).fit()
    _assert_same_model(members[0].student, model, "kd")
    n = len(bundle.train)
    weak = n if not augment else 2 * n
    assert results[0].teacher_queries == weak
    for r in results[1:]:  # the strong view is queried live every epoch, charged to its users only
        assert r.teacher_queries == weak + 2 * n


class StopAtTwoView(StopAt):
    def __init__(self, inner: kdzoo.DistillLoss, epoch: int):
        super().__init__(inner, epoch)
        self.needs = inner.needs  # a per-instance declaration is what the engine reads


def test_two_view_run_resumes_exactly(tmp_path):
    bundle = _bundle(augment=True)
    ref = _net(0)
    (expected,) = _trainer(bundle, [Member("mlkd", ref, kdzoo.build_loss("mlkd"), run_dir=tmp_path / "ref")]).fit()
    with pytest.raises(KeyboardInterrupt):
        _trainer(bundle, [Member("mlkd", _net(0), StopAtTwoView(kdzoo.build_loss("mlkd"), 2),
                                 run_dir=tmp_path / "run")]).fit()
    model = _net(7)
    (r,) = _trainer(bundle, [Member("mlkd", model, kdzoo.build_loss("mlkd"), run_dir=tmp_path / "run")]).fit()
    _assert_same_model(model, ref, "mlkd")
    assert _result(r) == _result(expected)
    assert _metrics(tmp_path / "run") == _metrics(tmp_path / "ref")


def test_strong_view_needs_known_normalization():
    class NoStats:
        seed = 0
    m = Member("mlkd", _net(0), kdzoo.build_loss("mlkd"))
    with pytest.raises(ConfigError, match="normalization is unknown"):
        StrongViews.build([m], NoStats(), None, None, torch.device("cpu"))
    assert StrongViews.build([Member("kd", _net(0), kdzoo.build_loss("kd"))], NoStats(), None, None,
                             torch.device("cpu")) is None


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST files not present")
def test_fashion_mnist_two_view_losses_solo_equal_cohort_through_the_bench_runner(tmp_path):
    from kdzoo.bench.run import RunSpec, execute, execute_cohort
    from kdzoo.engine.runfolder import MODEL as MODEL_FILE
    from kdzoo.engine import TrainConfig

    quiet = dict(progress=False, log=lambda _m: None)
    teacher = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method="ce", seed=1,
                      train=TrainConfig(epochs=1, steps_per_epoch=4, device="cpu", lr=0.1))
    assert execute(teacher, tmp_path / "t", **quiet)["status"] == "finished"
    cfg = TrainConfig(epochs=1, steps_per_epoch=3, batch_size=32, device="cpu")
    specs = [RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method=n, teacher="fmnist_mlp",
                     teacher_ckpt=str(tmp_path / "t" / MODEL_FILE), access="logits", seed=0, train=cfg)
             for n in ["kd", *TWO_VIEW_LOSSES]]
    cohort = execute_cohort(specs, [tmp_path / "c" / s.method.replace("+", "_") for s in specs], **quiet)
    for spec, rec in zip(specs, cohort):
        solo = execute(spec, tmp_path / "s" / spec.method.replace("+", "_"), **quiet)
        assert rec["status"] == solo["status"] == "finished", rec["message"]
        assert rec["top1"] == solo["top1"] and rec["teacher_queries"] == solo["teacher_queries"], spec.method
    assert cohort[1]["teacher_queries"] > cohort[0]["teacher_queries"]


@pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST files not present")
def test_fashion_mnist_two_view_losses_learn_at_the_authors_batch_size(tmp_path):
    """mlkd and crld at batch 64 (the authors'), lr 0.005: measured 67% and 71% after 40 steps (kd: 58%).
    mlkd+ls does not learn this 10-class task at any lr tried (its correlation terms carry weight 9)."""
    from kdzoo.bench.run import RunSpec, execute, execute_cohort
    from kdzoo.engine.runfolder import MODEL as MODEL_FILE
    from kdzoo.engine import TrainConfig

    quiet = dict(progress=False, log=lambda _m: None)
    teacher = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method="ce", seed=123,
                      train=TrainConfig(epochs=1, steps_per_epoch=60, device="cpu", lr=0.1))
    assert execute(teacher, tmp_path / "t", **quiet)["top1"] > 60
    cfg = TrainConfig(epochs=2, steps_per_epoch=20, batch_size=64, lr=0.005, device="cpu")
    specs = [RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method=n, teacher="fmnist_mlp",
                     teacher_ckpt=str(tmp_path / "t" / MODEL_FILE), access="logits", seed=0, train=cfg)
             for n in ("mlkd", "crld")]
    for spec, rec in zip(specs, execute_cohort(specs, [tmp_path / s.method for s in specs], **quiet)):
        assert rec["status"] == "finished" and rec["top1"] > 60, (spec.method, rec["top1"])


def test_listing_and_recipes_read_access_and_needs_from_the_built_loss(tmp_path):
    from kdzoo.bench.recipe import load_recipe
    from test_bench_recipe import BASE, write

    info = kdzoo.loss_info("mlkd+ls")
    assert info["needs"] == ["strong_view"] and info["requires"] == "probs"
    assert kdzoo.loss_info("mlkd")["requires"] == "probs" and kdzoo.loss_info("kd")["needs"] == []
    two_view = BASE.replace("  - kd\n", "  - mlkd\n  - mlkd+ls\n").replace("access: [logits]", "access: [probs]")
    recipe = load_recipe(write(tmp_path, two_view.replace("  - {name: kd, label: kd-T2, args: {temperature: 2}}\n", "")))
    assert {m.label for m in recipe.methods} >= {"mlkd", "mlkd+ls"} and recipe.access == ["probs"]
    with pytest.raises(ConfigError, match="loss 'mlkd' needs teacher access 'probs'"):
        load_recipe(write(tmp_path, two_view.replace("access: [probs]", "access: [label]")))
