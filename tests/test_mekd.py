"""MEKD: the distillation loss against a hand computation, the generator cache, the whole pipeline."""
import json
import math

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.bench.execution.run import execute
from kdzoo.bench.spec import RunSpec
from kdzoo.engine import TrainConfig, runfolder
from kdzoo.engine.prepare import PrepareContext, run_preparation
from kdzoo.stages.dcgan import Discriminator, Generator
from kdzoo.teachers import Teacher

from conftest import make_bundle

DATASET = "mekd-synth"
kdzoo.register_dataset(DATASET, lambda data_root=None, val_size=0, seed=0, augment=False:
                       make_bundle(n_train=64, n_test=32, classes=4, size=10, channels=3), overwrite=True)


# ------------------------------------------------------------- reference by hand
def _fixed_generator(seed=0, latent=4, channels=2, size=(6, 6), width=4):
    """A small generator with fixed, non-trivial weights and batch-norm statistics (size 6: cropped from 8)."""
    torch.manual_seed(seed)
    g = Generator(latent, channels, size, width)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return g.eval()


def _np(t):
    return t.detach().double().numpy()


def _reference_generator(g, z):
    """G's forward pass written out with NumPy: linear, BN, nearest x2, conv3x3 (loops), LeakyReLU, tanh, crop."""
    lin, (bn0, _, c1, bn1, _, _, c2, bn2, _, c3, _) = g.fc, list(g.body)

    def bn(x, m):
        return ((x - _np(m.running_mean)[:, None, None]) / np.sqrt(_np(m.running_var)[:, None, None] + m.eps)
                * _np(m.weight)[:, None, None] + _np(m.bias)[:, None, None])

    def conv(x, m):
        w, b = _np(m.weight), _np(m.bias)
        cin, h, wd = x.shape
        xp = np.zeros((cin, h + 2, wd + 2))
        xp[:, 1:-1, 1:-1] = x
        out = np.zeros((w.shape[0], h, wd))
        for i in range(h):
            for j in range(wd):
                out[:, i, j] = np.tensordot(w, xp[:, i:i + 3, j:j + 3], axes=([1, 2, 3], [0, 1, 2])) + b
        return out

    def up(x):
        return x.repeat(2, axis=1).repeat(2, axis=2)

    def lrelu(x):
        return np.where(x > 0, x, 0.2 * x)

    imgs = []
    for row in z:
        x = (_np(lin.weight) @ row + _np(lin.bias)).reshape(-1, g.h0, g.w0)
        x = lrelu(bn(conv(up(bn(x, bn0)), c1), bn1))
        x = lrelu(bn(conv(up(x), c2), bn2))
        x = np.tanh(conv(x, c3))
        oy, ox = (x.shape[1] - g.size[0]) // 2, (x.shape[2] - g.size[1]) // 2
        imgs.append(x[:, oy:oy + g.size[0], ox:ox + g.size[1]])
    return np.stack(imgs)


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _reference_loss(g, s, t, *, tau, T, w_img, w_kl, distance, hard):
    s, t = _np(s), _np(t)
    if hard:
        t = np.eye(t.shape[1])[t.argmax(1)]                      # the authors' 0/1 one-hot response
    d = _reference_generator(g, s / tau) - _reference_generator(g, t / tau)
    img = np.abs(d).mean() if distance == "l1" else (d ** 2).mean()
    p_t, p_s = _softmax(t / T), _softmax(s / T)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(1).mean()
    return {"img": w_img * img, "kl": w_kl * T * kl}


@pytest.mark.parametrize("kw", [
    {},
    {"distance": "l2", "tau": 2.0, "temperature": 3.0, "w_img": 0.7, "w_kl": 1.3},
    {"response": "hard"},
])
def test_distillation_loss_equals_reference(kw):
    g = _fixed_generator()
    loss = kdzoo.build_loss("mekd", **kw)
    loss.set_generator(g)
    gen = torch.Generator().manual_seed(1)
    s = (torch.randn(5, 4, generator=gen) * 3).requires_grad_(True)
    t = torch.randn(5, 4, generator=gen) * 3
    out = loss(s, t, torch.zeros(5, dtype=torch.long))
    assert set(out) == {"img", "kl"}                               # no labels, no "ce"
    ref = _reference_loss(g, s, t, tau=kw.get("tau", 5.0), T=kw.get("temperature", 5.0), w_img=kw.get("w_img", 1.0),
                          w_kl=kw.get("w_kl", 1.0), distance=kw.get("distance", "l1"), hard="response" in kw)
    for k in ref:
        assert out[k].item() == pytest.approx(ref[k], rel=1e-4, abs=1e-7), k
    assert out["img"].item() > 1e-4                               # the image term is not trivially zero here
    # gradients reach the student's logits through the frozen generator, never the generator itself
    sum(out.values()).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in g.parameters())
    assert not g.training


def test_label_access_gives_the_hard_response():
    """With access label the trainer hands over one-hot logits (-1e4 gap); mekd uses the 0/1 one-hot."""
    g = _fixed_generator()
    z, s = torch.randn(6, 4) * 2, torch.randn(6, 4)
    soft, hard = kdzoo.build_loss("mekd"), kdzoo.build_loss("mekd", response="hard")
    soft.set_generator(g), hard.set_generator(g)
    soft.hard = True  # what use_prepared() sets for access label with response="auto"
    exposed = Teacher(torch.nn.Identity(), "label")(z)
    a, b = soft(s, exposed, None), hard(s, z, None)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
        assert torch.isfinite(a[k])


@pytest.mark.parametrize("channels,size", [(1, (28, 28)), (3, (32, 32)), (1, (30, 30)), (3, (10, 14))])
def test_generator_and_discriminator_fit_any_image_size(channels, size):
    g, d = Generator(10, channels, size, width=8), Discriminator(channels, size)
    x = g(torch.randn(3, 10))
    assert x.shape == (3, channels, *size) and x.abs().max() <= 1
    assert d(x).shape == (3,)


# -------------------------------------------------------------- preparation + cache
def _ctx(tmp_path, bundle, teacher, run="run", seed=0, **cfg):
    config = TrainConfig(**{"epochs": 1, "batch_size": 8, "steps_per_epoch": 2, "device": "cpu", **cfg})
    return PrepareContext(teacher=teacher, train_loader=None, bundle=bundle, device=torch.device("cpu"),
                          cache_dir=tmp_path / "cache", run_dir=tmp_path / run, seed=seed, config=config,
                          progress=False, name="mekd")


CACHE = "deprivatize"   # the stage's folder in the cache


def _prepare(loss, ctx):
    run_preparation(loss, ctx)
    return loss


def _teacher(bundle, access):
    torch.manual_seed(7)
    return Teacher(kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes,
                                     in_channels=bundle.in_channels), access=access)


GEN = {"gen_steps": 3, "gen_batch_size": 8, "gen_width": 8, "grid_per_class": 2}


def test_generator_is_cached_and_reused(tmp_path):
    bundle = make_bundle(n_train=32, size=12, channels=1)
    t1 = _teacher(bundle, "probs")
    loss = kdzoo.build_loss("mekd", **GEN)
    _prepare(loss, _ctx(tmp_path, bundle, t1))
    assert loss.info["trained"] and t1.queries == loss.info["queries"] == 3 * 8 + 4 * 2 * 4
    (cached,) = (tmp_path / "cache" / CACHE).glob("*.pt")
    mtime = cached.stat().st_mtime_ns
    # a second run with the same teacher, data, access, seed and settings: no training, no queries
    t2 = _teacher(bundle, "probs")
    again = kdzoo.build_loss("mekd", **GEN)
    ctx = _ctx(tmp_path, bundle, t2, run="run2")
    _prepare(again, ctx)
    assert not again.info["trained"] and t2.queries == 0 and cached.stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "run2" / runfolder.PREPARED).read_text())["trained"] is False
    for a, b in zip(loss.generator.state_dict().values(), again.generator.state_dict().values()):
        assert torch.equal(a, b)
    # the student's batches: G(z), normalized; a fixed stream per epoch
    batches = [x for x, _, _ in ctx.train_loader]
    assert len(batches) == len(ctx.train_loader) == 2 and batches[0].shape == (8, 1, 12, 12)
    assert torch.equal(next(iter(ctx.train_loader))[0], batches[0])
    # any change of access, seed or setting trains a new generator
    for access, seed, kw in (("label", 0, {}), ("probs", 1, {}), ("probs", 0, {"gen_alpha": 0.1})):
        other = kdzoo.build_loss("mekd", **{**GEN, **kw})
        _prepare(other, _ctx(tmp_path, bundle, _teacher(bundle, access), seed=seed))
        assert other.info["trained"]
    assert len(list((tmp_path / "cache" / CACHE).glob("*.pt"))) == 4


def test_cached_generator_made_with_other_settings_is_refused(tmp_path):
    """A cache file at the digest's path whose recorded settings differ (a hash collision, a copied
    file) is never used: one error naming the differing settings; the file is left as it is."""
    bundle = make_bundle(n_train=32, size=12, channels=1)
    _prepare(kdzoo.build_loss("mekd", **GEN), _ctx(tmp_path, bundle, _teacher(bundle, "probs")))
    (cached,) = (tmp_path / "cache" / CACHE).glob("*.pt")
    state = torch.load(cached, weights_only=True)
    state["info"]["key"]["gen_steps"] = 999
    torch.save(state, cached)
    before = cached.read_bytes()
    t = _teacher(bundle, "probs")
    with pytest.raises(kdzoo.ConfigError, match=r"cached product .* other settings \(gen_steps 999 -> 3\)"):
        _prepare(kdzoo.build_loss("mekd", **GEN), _ctx(tmp_path, bundle, t, run="run2"))
    assert cached.read_bytes() == before and t.queries == 0 and not (tmp_path / "run2").exists()


def test_budget_too_small_for_the_generator_is_refused_up_front(tmp_path):
    bundle = make_bundle(n_train=32, size=12)
    teacher = Teacher(_teacher(bundle, "probs").model, "probs", budget=20)
    # 3 GAN steps of 8 and a 4-class grid of 2 x 4 samples
    with pytest.raises(kdzoo.AccessError, match=r"^mekd: needs about 56 teacher queries \(56 to prepare\), 20 are "
                                                r"left in the budget; lower its settings or raise the budget$"):
        _prepare(kdzoo.build_loss("mekd", **GEN), _ctx(tmp_path, bundle, teacher))
    assert teacher.queries == 0 and not list((tmp_path / "cache").rglob("*.pt"))


# ------------------------------------------------------------------- end to end
def _png_size(path):
    """(width, height, mode) as an independent reader (Pillow) sees the file."""
    from PIL import Image
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.width, img.height, img.mode


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    bundle = make_bundle(n_train=64, n_test=32, classes=4, size=10, channels=3)
    torch.manual_seed(0)
    model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=3)
    path = tmp_path_factory.mktemp("teacher") / "model.pt"
    torch.save(model.state_dict(), path)
    return str(path), bundle


@pytest.mark.parametrize("access", ["probs", "label"])
def test_mekd_end_to_end_through_execute(tmp_path, teacher_ckpt, access):
    ckpt, _ = teacher_ckpt
    spec = RunSpec(dataset=DATASET, student="fmnist_cnn_tiny", method="mekd", loss_kwargs=dict(GEN),
                   teacher="fmnist_cnn_tiny", teacher_ckpt=ckpt, access=access, train_fraction=0.5,
                   hide_labels=True, train=TrainConfig(epochs=1, batch_size=8, steps_per_epoch=3, device="cpu"))
    r = execute(spec, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert r["status"] == "finished" and math.isfinite(r["top1"])
    info = json.loads((tmp_path / "run" / runfolder.PREPARED).read_text())
    assert info["trained"] and info["queries"] == 3 * 8 + 4 * 2 * 4 and info["key"]["hard"] == (access == "label")
    # the generator's queries (3 GAN steps of 8, then a 4-class grid of 2x4 samples) are part of the price
    assert r["prepare_queries"] == 3 * 8 + 4 * 2 * 4
    assert r["teacher_queries"] == 3 * 8 + r["prepare_queries"]   # distillation: one query per generated image
    # 4 class rows of 2 tiles, each 10x10 shown at 20x20, with torchvision's 2-pixel grid padding; RGB
    assert _png_size(tmp_path / "run" / runfolder.prepared_file("samples.png")) == (2 + 2 * (20 + 2),
                                                                                   2 + 4 * (20 + 2), "RGB")
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert set(metrics[0]["train"]) == {"img", "kl"}
    # a second run reuses the generator
    r2 = execute(spec, tmp_path / "run2", cache_dir=tmp_path / "cache", progress=False)
    assert json.loads((tmp_path / "run2" / runfolder.PREPARED).read_text())["trained"] is False
    assert r2["top1"] == r["top1"]                             # same seed, same generator: same student
    assert r2["teacher_queries"] == r["teacher_queries"]       # a cached generator still costs what it cost


@pytest.mark.parametrize("method,access", [("kd", "probs"), ("kd", "label"), ("ce", "label")])
def test_black_box_baselines_through_execute(tmp_path, teacher_ckpt, method, access):
    ckpt, _ = teacher_ckpt
    spec = RunSpec(dataset=DATASET, student="fmnist_cnn_tiny", method=method, teacher="fmnist_cnn_tiny",
                   teacher_ckpt=ckpt, access=access, train_fraction=0.5, hide_labels=True,
                   train=TrainConfig(epochs=2, batch_size=8, device="cpu"))
    r = execute(spec, tmp_path / "run", progress=False)
    assert r["status"] == "finished"
    assert r["teacher_queries"] == 32                           # the student side's 32 images, asked once


# ------------------------------------------------ the authors' DCGAN options (issue 14)
class _CountingGenerator(Generator):
    """Generator that records the batch size of every forward call (module-wide list)."""
    calls: list[int] = []

    def forward(self, z):
        _CountingGenerator.calls.append(z.shape[0])
        return super().forward(z)


def test_authors_batchnorm_eps_reaches_generator_and_discriminator(tmp_path):
    bundle = make_bundle(n_train=32, size=12, channels=1)
    loss = kdzoo.build_loss("mekd", **GEN, gen_bn_eps=0.8)
    _prepare(loss, _ctx(tmp_path, bundle, _teacher(bundle, "probs")))
    bns = [m for m in loss.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [m.eps for m in bns] == [1e-5, 0.8, 0.8]              # as the authors: the first BN keeps 1e-5
    disc = [m.eps for m in Discriminator(1, (12, 12), 8, bn_eps=0.8).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert disc == [0.8, 0.8, 0.8]
    assert loss.info["key"]["gen_bn_eps"] == 0.8
    plain = kdzoo.build_loss("mekd", **GEN)
    _prepare(plain, _ctx(tmp_path, bundle, _teacher(bundle, "probs"), run="run2"))
    assert plain.info["trained"] and "gen_bn_eps" not in plain.info["key"]   # off: the cache key is unchanged
    assert [m.eps for m in plain.generator.modules() if isinstance(m, torch.nn.BatchNorm2d)] == [1e-5] * 3


def test_fresh_z_draws_two_generator_batches_per_gan_step(tmp_path, monkeypatch):
    import kdzoo.stages.deprivatize as dep
    monkeypatch.setattr(dep, "Generator", _CountingGenerator)
    bundle = make_bundle(n_train=32, size=12, channels=1)
    counts, queries, weights = {}, {}, {}
    for fresh in (False, True):
        _CountingGenerator.calls = []
        teacher = _teacher(bundle, "probs")
        loss = kdzoo.build_loss("mekd", **GEN, gen_fresh_z=fresh)
        _prepare(loss, _ctx(tmp_path, bundle, teacher, run=f"run{fresh}"))
        counts[fresh], queries[fresh] = list(_CountingGenerator.calls), teacher.queries
        weights[fresh] = loss.generator.fc.weight.clone()
    grid = 4 * 2 * 4                                               # the sample grid: one call of 4 x k x classes
    assert counts[False] == [8] * 3 + [grid]                       # one batch per GAN step, D and G share it
    assert counts[True] == [8] * 6 + [grid]                        # a fresh batch for the G step
    assert queries[True] == queries[False] == 3 * 8 + grid         # the teacher is asked once per GAN step
    assert not torch.equal(weights[True], weights[False])


def test_new_options_stay_out_of_run_hashes_when_off():
    from kdzoo.bench.plan import resolved_loss_kwargs
    off = resolved_loss_kwargs("mekd", {"gen_steps": 400})
    assert "gen_bn_eps" not in off and "gen_fresh_z" not in off and off["gen_steps"] == 400
    assert resolved_loss_kwargs("mekd", {"gen_steps": 400, "gen_bn_eps": 1e-5, "gen_fresh_z": False}) == off
    on = resolved_loss_kwargs("mekd", {"gen_steps": 400, "gen_bn_eps": 0.8, "gen_fresh_z": True})
    assert on == {**off, "gen_bn_eps": 0.8, "gen_fresh_z": True}
    spec = lambda kw: RunSpec(dataset=DATASET, student="fmnist_cnn_tiny", method="mekd", loss_kwargs=kw)  # noqa: E731
    assert spec(on).config_hash() != spec(off).config_hash()
    with pytest.raises(kdzoo.ConfigError, match="gen_bn_eps must be > 0"):
        kdzoo.build_loss("mekd", gen_bn_eps=0.0)


# ------------------------------------------------------- the fast distillation step
def test_folded_generator_equals_the_plain_one():
    from kdzoo.losses._frozen_gen import FrozenGenerator
    for size, eps in (((6, 6), 1e-5), ((28, 28), 0.8), ((10, 14), 1e-5)):
        torch.manual_seed(3)
        g = Generator(4, 2, size, 8, bn_eps=eps)
        g.train()
        for _ in range(3):                                          # non-trivial running statistics
            g(torch.randn(16, 4) * 2)
        g.eval().requires_grad_(False)
        z1 = (torch.randn(7, 4) * 3).requires_grad_(True)
        z2 = z1.detach().clone().requires_grad_(True)
        a, b = g(z1), FrozenGenerator(g)(z2)
        assert a.shape == b.shape == (7, 2, *size)
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
        w = torch.randn_like(a)
        (a * w).sum().backward(), (b * w).sum().backward()
        torch.testing.assert_close(z2.grad, z1.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kw", [{}, {"distance": "l2", "tau": 2.0}, {"response": "hard"}])
def test_fast_step_gives_the_loss_values_of_the_plain_generator(kw):
    """The step before the speed-up ran G itself: same losses and student gradients to 1e-6."""
    g = _fixed_generator()
    loss = kdzoo.build_loss("mekd", **kw)
    loss.set_generator(g)
    gen = torch.Generator().manual_seed(2)
    s = (torch.randn(9, 4, generator=gen) * 3).requires_grad_(True)
    t = torch.randn(9, 4, generator=gen) * 3
    out = loss(s, t, None)
    tau = kw.get("tau", 5.0)
    s0 = s.detach().clone().requires_grad_(True)
    t0 = torch.nn.functional.one_hot(t.argmax(1), 4).float() if "response" in kw else t
    d = g(s0 / tau) - g(t0 / tau)
    img = d.abs().mean() if kw.get("distance", "l1") == "l1" else d.pow(2).mean()
    assert out["img"].item() == pytest.approx(img.item(), rel=1e-6, abs=1e-7)
    out["img"].backward(), img.backward()
    torch.testing.assert_close(s.grad, s0.grad, rtol=1e-5, atol=1e-7)
    # the folded copy follows the generator when its weights change (training, load_state_dict)
    with torch.no_grad():
        g.body[2].weight.mul_(1.5)
    z = torch.randn(3, 4)
    torch.testing.assert_close(loss.generate(z), g(z), rtol=0, atol=1e-6)


def test_folded_copy_is_rebuilt_for_a_generator_made_in_inference_mode():
    """Inference tensors keep no version counter: the copy is then rebuilt on every call, never stale."""
    with torch.inference_mode():
        g = _fixed_generator()
    loss = kdzoo.build_loss("mekd")
    loss.set_generator(g)
    z = torch.randn(3, 4)
    with torch.inference_mode():
        ref = g(z)
        torch.testing.assert_close(loss.generate(z), ref, rtol=0, atol=1e-6)
        g.body[2].weight.mul_(2.0)
        torch.testing.assert_close(loss.generate(z), g(z), rtol=0, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_generated_batches_have_the_layout_the_trainer_asked_for(channels_last):
    """The folded generator computes in channels_last; the student gets what the config asked for."""
    from kdzoo.losses._generated import GeneratedLoader
    loss = kdzoo.build_loss("mekd")
    loss.set_generator(Generator(4, 3, (10, 10), 8))
    (x, _, _), = list(GeneratedLoader(loss, 4, 1, seed=0, channels_last=channels_last))
    assert x.shape == (4, 3, 10, 10)
    assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
