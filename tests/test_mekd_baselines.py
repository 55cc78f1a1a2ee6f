"""MEKD's generator baselines (gen-kd-soft, gen-ce-hard), the pooled student phase, the hard-target rule
and where generators are cached (issue 24; issue 25 item 3)."""
import json

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.data import make_loader
from kdzoo.engine import Member, TrainConfig, Trainer, runfolder
from kdzoo.engine.prepare import PrepareContext, default_cache_dir, run_preparation
from kdzoo.losses._generated import GeneratedLoader, PooledLoader
from kdzoo.stages.dcgan import Generator
from kdzoo.teachers import Teacher, check_access

from conftest import make_bundle

GEN = {"gen_steps": 3, "gen_batch_size": 8, "gen_width": 8, "grid_per_class": 2, "steps_per_epoch": 2}
GEN_QUERIES = 3 * 8 + 4 * 2 * 4        # 3 GAN steps of 8 images, then a 4-class grid of 2 x 4 samples


def _teacher(bundle, access, budget=None):
    torch.manual_seed(7)
    model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes, in_channels=bundle.in_channels)
    return Teacher(model, access=access, budget=budget)


def _ctx(tmp_path, bundle, teacher, run, seed=0, name="mekd", **cfg):
    config = TrainConfig(**{"epochs": 1, "batch_size": 8, "device": "cpu", **cfg})
    return PrepareContext(teacher=teacher, train_loader=None, bundle=bundle, device=torch.device("cpu"),
                          cache_dir=tmp_path / "cache", run_dir=tmp_path / run, seed=seed, config=config,
                          progress=False, name=name)


@pytest.fixture()
def bundle():
    return make_bundle(n_train=32, size=12, channels=1)


# ------------------------------------------------------------ same generator, same noise
@pytest.mark.parametrize("baseline,access", [("gen-kd-soft", "probs"), ("gen-ce-hard", "label")])
@pytest.mark.parametrize("pool", [0, 12])
def test_baselines_train_on_mekds_generator_and_noise(tmp_path, bundle, baseline, access, pool):
    """The baseline of a seed reuses the generator MEKD made (a cache hit: not retrained, no query, file
    untouched) and draws the same images: equal first batches, fresh every step or from the pool."""
    mekd_ctx = _ctx(tmp_path, bundle, _teacher(bundle, access), "mekd")
    mekd = kdzoo.build_loss("mekd", **GEN, pool=pool)
    made = run_preparation(mekd, mekd_ctx)
    assert made["trained"] and mekd_ctx.teacher.queries == GEN_QUERIES
    (cached,) = (tmp_path / "cache" / "deprivatize").glob("*.pt")
    mtime = cached.stat().st_mtime_ns
    base_ctx = _ctx(tmp_path, bundle, _teacher(bundle, access), "base", name=baseline)
    base = kdzoo.build_loss(baseline, **GEN, pool=pool)
    reused = run_preparation(base, base_ctx)
    assert reused["trained"] is False and reused["hash"] == made["hash"] and reused["queries"] == GEN_QUERIES
    assert base_ctx.teacher.queries == 0 and cached.stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "base" / runfolder.PREPARED).read_text())["trained"] is False
    for a, b in zip(mekd.generator.state_dict().values(), base.generator.state_dict().values()):
        assert torch.equal(a, b)
    assert type(mekd_ctx.train_loader) is type(base_ctx.train_loader) is (PooledLoader if pool else GeneratedLoader)
    (x1, _, i1), (x2, _, i2) = next(iter(mekd_ctx.train_loader)), next(iter(base_ctx.train_loader))
    assert torch.equal(x1, x2) and torch.equal(i1, i2)
    assert base.hard == mekd.hard == (access == "label")


@pytest.mark.parametrize("access,methods", [
    ("probs", [("mekd", {"response": "soft"}), ("gen-kd-soft", {"pool": 12}), ("mekd", {"w_img": 0.0, "pool": 12}),
               ("gen-kd-soft", {"steps_per_epoch": 5})]),
    ("label", [("mekd", {}), ("gen-ce-hard", {"pool": 12}), ("mekd", {"hard_target": "onehot", "pool": 12}),
               ("gen-ce-hard", {"steps_per_epoch": 5})])])
def test_one_generator_serves_every_student_phase(tmp_path, bundle, access, methods):
    """Made once per (access, seed), then a cache hit for each new method and student phase (pool, steps,
    image term, hard target): the stage's own record says reused, the teacher is never asked, and the file
    keeps its mtime; a new seed is a new generator."""
    records, mtimes = [], []
    for i, (name, kw) in enumerate(methods):
        ctx = _ctx(tmp_path, bundle, _teacher(bundle, access), f"run{i}", name=name)
        records.append(run_preparation(kdzoo.build_loss(name, **{**GEN, **kw}), ctx))
        (cached,) = (tmp_path / "cache" / "deprivatize").glob("*.pt")
        mtimes.append(cached.stat().st_mtime_ns)
        assert ctx.teacher.queries == (GEN_QUERIES if i == 0 else 0), name
    assert [r["trained"] for r in records] == [True] + [False] * (len(methods) - 1)
    assert len({r["hash"] for r in records}) == 1 and len(set(mtimes)) == 1
    other = run_preparation(kdzoo.build_loss(methods[1][0], **GEN),
                            _ctx(tmp_path, bundle, _teacher(bundle, access), "seed1", seed=1, name=methods[1][0]))
    assert other["trained"] and len(list((tmp_path / "cache" / "deprivatize").glob("*.pt"))) == 2


def test_the_pool_is_the_start_of_the_per_step_stream(tmp_path, bundle):
    fresh = kdzoo.build_loss("mekd", **GEN)
    ctx = _ctx(tmp_path, bundle, _teacher(bundle, "probs"), "fresh")
    run_preparation(fresh, ctx)
    stream = torch.cat([x for x, _, _ in GeneratedLoader(fresh, 8, 2, seed=0, channels_last=False)])
    pooled = PooledLoader(fresh, 12, 8, seed=0, channels_last=False)
    assert torch.equal(pooled.images, stream[:12])


def test_pooled_loader_walks_the_pool_once_per_epoch_in_a_new_order():
    loss = kdzoo.build_loss("mekd")
    loss.set_generator(Generator(4, 1, (6, 6), 8))
    pool = PooledLoader(loss, 20, 8, seed=3, channels_last=False)
    assert len(pool) == 3 and pool.deterministic and pool.num_samples == 20     # ceil(20 / 8) batches
    orders = []
    for epoch in (1, 2):
        pool.set_epoch(epoch)
        batches = list(pool)
        idx = torch.cat([i for _, _, i in batches])
        assert sorted(idx.tolist()) == list(range(20)) and [len(i) for _, _, i in batches] == [8, 8, 4]
        for x, _, i in batches:
            assert torch.equal(x, pool.images[i])
        orders.append(idx.tolist())
    assert orders[0] != orders[1]
    full = list(pool.full_pass(6))
    assert torch.equal(torch.cat([i for _, i in full]), torch.arange(20))
    assert len(PooledLoader(loss, 20, 8, seed=3, channels_last=False, max_steps=2)) == 2


# ----------------------------------------------------------------- the pooled student phase
def _train(tmp_path, bundle, teacher, method, run, epochs=3, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=8, device="cpu", pseudo_labels=True)
    torch.manual_seed(0)
    student = kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes, in_channels=bundle.in_channels)
    member = Member(method, student, kdzoo.build_loss(method, **{**GEN, **kw}), run_dir=tmp_path / run)
    loaders = make_loader(bundle, "train", 8, train=True), {"test": make_loader(bundle, "test", 16, train=False)}
    return Trainer([member], *loaders, teacher, cfg, bundle=bundle, cache_dir=tmp_path / "cache",
                   progress=False).fit()[0]


@pytest.mark.parametrize("method", ["mekd", "gen-kd-soft"])
def test_pooled_phase_asks_the_teacher_once_per_pool_image(tmp_path, bundle, method):
    """N images labelled once: the teacher's own counter moves by the generator's queries plus N, whatever
    the number of epochs; with the generator cached, by N alone."""
    first = _teacher(bundle, "probs")
    r = _train(tmp_path, bundle, first, method, "a", pool=20)
    assert r.status == "finished" and first.queries == GEN_QUERIES + 20
    assert (r.teacher_queries, r.prepare_queries) == (GEN_QUERIES + 20, GEN_QUERIES)
    again = _teacher(bundle, "probs")
    r2 = _train(tmp_path, bundle, again, method, "b", epochs=2, pool=20)
    assert again.queries == 20 and r2.teacher_queries == GEN_QUERIES + 20    # a cached generator still costs its price
    metrics = [json.loads(line) for line in (tmp_path / "b" / runfolder.METRICS).read_text().splitlines()]
    assert [m["teacher_queries"] for m in metrics] == [GEN_QUERIES + 20] * 2


@pytest.mark.parametrize("cached", [True, False])
def test_a_budget_below_the_pool_is_refused_before_training(tmp_path, bundle, cached):
    if cached:
        run_preparation(kdzoo.build_loss("mekd", **GEN), _ctx(tmp_path, bundle, _teacher(bundle, "probs"), "warm"))
    need = 20 + (0 if cached else GEN_QUERIES)
    teacher = _teacher(bundle, "probs", budget=need - 1)
    parts = "20 for the student phase" if cached else f"{GEN_QUERIES} to prepare, 20 for the student phase"
    with pytest.raises(kdzoo.AccessError) as err:
        _train(tmp_path, bundle, teacher, "mekd", "run", pool=20)
    assert str(err.value) == (f"mekd: needs about {need} teacher queries ({parts}), {need - 1} are left in the "
                              f"budget; lower its settings or raise the budget")
    assert teacher.queries == 0 and not (tmp_path / "run" / runfolder.CHECKPOINT).exists()
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == int(cached)      # nothing trained


def test_a_budget_of_exactly_the_pool_is_enough(tmp_path, bundle):
    run_preparation(kdzoo.build_loss("mekd", **GEN), _ctx(tmp_path, bundle, _teacher(bundle, "probs"), "warm"))
    teacher = _teacher(bundle, "probs", budget=20)
    assert _train(tmp_path, bundle, teacher, "mekd", "run", pool=20).status == "finished" and teacher.queries == 20


def test_a_pool_needs_the_teacher_table(tmp_path, bundle):
    with pytest.raises(kdzoo.ConfigError, match=r"^mekd: pool labels its images once, which needs "
                                                r"train.cache_teacher true$"):
        run_preparation(kdzoo.build_loss("mekd", **GEN, pool=8),
                        _ctx(tmp_path, bundle, _teacher(bundle, "probs"), "run", cache_teacher=False))
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------- the losses
def _np(t):
    return t.detach().double().numpy()


def _log_softmax(x):
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def _ce(s, y):
    return -_log_softmax(s)[np.arange(len(y)), y].mean()


def _logits(seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(6, 5, generator=g) * 3).requires_grad_(True), torch.randn(6, 5, generator=g) * 3


def test_gen_kd_soft_is_kd_on_the_teachers_top1():
    """0.1 CE(s, top-1 of t) + 0.9 * 4^2 * KL(p_t^4 || p_s^4), written out; and kdzoo's kd with pseudo-labels."""
    s, t = _logits()
    out = kdzoo.build_loss("gen-kd-soft")(s, t, None)
    assert set(out) == {"kl", "ce"}
    y = _np(t).argmax(1)
    log_pt, log_ps = _log_softmax(_np(t) / 4), _log_softmax(_np(s) / 4)
    kl = (np.exp(log_pt) * (log_pt - log_ps)).sum(1).mean()
    assert out["ce"].item() == pytest.approx(0.1 * _ce(_np(s), y), rel=1e-5)
    assert out["kl"].item() == pytest.approx(0.9 * 16 * kl, rel=1e-5)
    kd = kdzoo.build_loss("kd")(s, t, t.argmax(1))
    assert sum(out.values()).item() == pytest.approx(sum(kd.values()).item(), rel=1e-6)


def test_gen_ce_hard_is_ce_on_the_teachers_top1():
    s, t = _logits(2)
    exposed = Teacher(torch.nn.Identity(), "label")(t)          # label access: one-hot logits
    out = kdzoo.build_loss("gen-ce-hard")(s, exposed, None)
    assert set(out) == {"ce"} and out["ce"].item() == pytest.approx(_ce(_np(s), _np(t).argmax(1)), rel=1e-6)


def test_hard_target_onehot_makes_the_kl_term_ce_on_the_label():
    """KL(onehot || softmax(s / T)) = -log softmax(s / T)[top-1]: T * CE(s / T, y); the image term is unchanged."""
    g = Generator(5, 1, (6, 6), 8).eval()
    s, t = _logits(3)
    soft = kdzoo.build_loss("mekd", response="hard")
    onehot = kdzoo.build_loss("mekd", response="hard", hard_target="onehot")
    soft.set_generator(g), onehot.set_generator(g)
    a, b = soft(s, t, None), onehot(s, t, None)
    torch.testing.assert_close(a["img"], b["img"])
    assert b["kl"].item() == pytest.approx(5 * _ce(_np(s) / 5, _np(t).argmax(1)), rel=1e-6)
    # the authors' rule: the target softmax(onehot / 5) is nearly uniform (0.12 vs 0.098 for ten classes)
    p = np.exp(_log_softmax(np.eye(10)[:1] / 5))
    assert p[0, 0] == pytest.approx(0.1195, abs=1e-4) and p[0, 1] == pytest.approx(0.0978, abs=1e-4)
    assert a["kl"].item() < b["kl"].item()


def test_access_the_baselines_need():
    assert kdzoo.build_loss("gen-kd-soft").requires == "probs"
    assert kdzoo.build_loss("gen-ce-hard").requires == "label" == kdzoo.build_loss("mekd").requires
    assert kdzoo.build_loss("mekd", response="soft").requires == "probs"
    with pytest.raises(kdzoo.AccessError):
        check_access("gen-kd-soft", "probs", "label")


def test_bad_options_are_refused_in_one_line():
    for kw, msg in (({"pool": -1}, "pool must be a whole number"), ({"pool": 2.5}, "pool must be a whole number"),
                    ({"hard_target": "probs"}, "hard_target 'softened' or 'onehot'"),
                    ({"w_img": 0.0, "w_kl": 0.0}, "one of them > 0"), ({"w_ce": -1.0}, "must be >= 0")):
        with pytest.raises(kdzoo.ConfigError, match=msg) as err:
            kdzoo.build_loss("mekd", **kw)
        assert "\n" not in str(err.value)


def test_new_options_stay_out_of_run_hashes_at_their_defaults():
    from kdzoo.bench.plan import resolved_loss_kwargs
    off = resolved_loss_kwargs("mekd", {"gen_steps": 400})
    assert not {"w_ce", "pool", "hard_target"} & set(off)
    assert resolved_loss_kwargs("mekd", {"gen_steps": 400, "w_ce": 0.0, "pool": 0, "hard_target": "softened"}) == off
    assert resolved_loss_kwargs("mekd", {"gen_steps": 400, "pool": 600}) == {**off, "pool": 600}
    assert resolved_loss_kwargs("gen-ce-hard", {})["w_ce"] == 1.0


# -------------------------------------------------------------------- where the cache lives
def test_the_default_cache_is_the_users_never_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("KDZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "kdzoo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "kdzoo"
    bundle = make_bundle(n_train=8)
    student = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=1)
    trainer = Trainer([Member("ce", student, kdzoo.build_loss("ce"))], make_loader(bundle, "train", 8, train=True),
                      {}, None, TrainConfig(epochs=1, device="cpu"), progress=False)
    assert trainer.cache_dir == tmp_path / "home" / ".cache" / "kdzoo"
