"""sdd (Scale Decoupled Distillation) against the authors' code, the "features" access level,
the models' feature maps, and end-to-end training through the real trainer.

Golden values: github.com/shicaiwei123/SDD-CVPR2024 at commit
e412036c6b7b67d8ed25418d2dedad223ab49a71, run on CPU (torch 2.14.1) outside the repository:
mdistiller/distillers/{KD.py,SDD_DKD.py,DKD.py} and mdistiller/models/cifar/utils.py (SPP)
copied to /tmp/sdd_golden/authors with ``sed 's/\\.cuda()//g'`` (sdd_kd_loss calls
``torch.tensor(0.0).cuda()`` unconditionally) and ``Distiller = object``; the script builds the
region logits exactly as their models/cifar/resnet.py:202-209 (SPP(M) -> fc -> (B, K, R)), then
computes SDD_KD.forward_train (loss_ce + kd_weight * sdd_kd_loss) and SDD_DKD.forward_train
(loss_ce + min(epoch / warmup, 1) * multi_dkd), M and hyperparameters as listed in GOLDEN, on the inputs of ``_inputs`` below, and the
gradient of the total w.r.t. the student's feature map dotted with ``_probe``:

    cd /tmp/sdd_golden && python golden.py

GOLDEN_SPP (maps of side 6, 7 and 14, where the authors' SPP, which pools to 4 x 4 first, differs
from pooling each scale from the map): the same repository and commit, files
mdistiller/distillers/{KD.py,SDD_DKD.py,DKD.py,_base.py} (``sed 's/\\.cuda()//g'``) and
mdistiller/models/cifar/utils.py (SPP) as the package ``authors`` in /tmp/h-losses/sdd_golden,
whose golden.py builds (fc(avg), SPP(M) -> fc region logits) as their resnet.py:202-213 for
student and teacher and calls SDD_KD / SDD_DKD.forward_train on ``_inputs(h)`` (torch 2.14.1, CPU):

    cd /tmp/h-losses/sdd_golden && python golden.py

(that script reproduces GOLDEN's h = 8 values too).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import kdzoo
from kdzoo.bench.recipe.parse import parse_recipe
from kdzoo.bench.plan import expand
from kdzoo.data import make_loader
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.engine.runfolder import MODEL
from kdzoo.errors import AccessError, ConfigError
from kdzoo.losses.sdd import region_logits, region_weights
from kdzoo.registry import MODELS
from kdzoo.teachers import Teacher, check_access

from conftest import kdzoo_main as main, make_bundle, needs_fmnist

N, CS, CT, K, H = 6, 8, 12, 5, 8


def _inputs(h: int = H):
    s_map = torch.sin(torch.arange(N * CS * h * h, dtype=torch.float32) * 0.37).view(N, CS, h, h) * 2.0
    t_map = torch.cos(torch.arange(N * CT * h * h, dtype=torch.float32) * 0.23).view(N, CT, h, h) * 3.0 + 0.5
    fs, ft = nn.Linear(CS, K), nn.Linear(CT, K)
    with torch.no_grad():
        fs.weight.copy_(torch.sin(torch.arange(K * CS, dtype=torch.float32) * 1.3).view(K, CS))
        fs.bias.copy_(torch.cos(torch.arange(K, dtype=torch.float32)) * 0.1)
        ft.weight.copy_(torch.cos(torch.arange(K * CT, dtype=torch.float32) * 0.7).view(K, CT) * 1.5)
        ft.bias.copy_(torch.sin(torch.arange(K, dtype=torch.float32)) * 0.2)
    return s_map, t_map, fs, ft, torch.tensor([0, 1, 2, 3, 4, 2])


def _probe(x):
    return torch.cos(torch.arange(x.numel(), dtype=torch.float32) * 0.11).view_as(x)


def _run(loss, epoch, h: int = H):
    s_map, t_map, fs, ft, y = _inputs(h)
    s_map.requires_grad_(True)
    terms = loss(fs(s_map.mean(dim=(2, 3))), ft(t_map.mean(dim=(2, 3))), y, epoch=epoch,
                 student_feature_map=s_map, teacher_feature_map=t_map, student_classifier=fs, teacher_classifier=ft)
    total = sum(terms.values())
    (g,) = torch.autograd.grad(total, s_map)
    return terms, total.item(), (g * _probe(s_map)).sum().item()


# (sdd args, epoch, authors' loss_ce, authors' loss_kd, authors' total, gradient probe)
GOLDEN = [
    ({}, 1, 0.16433679, 1.05535114, 1.21968794, -0.08437803),                                  # defaults: kd, M=[1,2]
    ({"scales": [1, 2, 4]}, 1, 0.16433679, 2.03299475, 2.19733143, 0.12712623),
    ({"base_args": {"temperature": 2.0}}, 1, 0.16433679, 0.85490251, 1.01923931, -0.06743971),
    ({"base": "dkd"}, 30, 1.64336777, 9.45104885, 11.09441662, -0.83751082),                  # dkd defaults, M=[1,2]
    ({"base": "dkd", "scales": [1, 2, 4]}, 30, 1.64336777, 17.19596863, 18.83933640, 1.00602865),
    ({"base": "dkd", "base_args": {"temperature": 2.0, "beta": 2.0}}, 5,                       # inside the warm-up
     1.64336777, 0.52500021, 2.16836786, -0.02413964),
]


@pytest.mark.parametrize("args,epoch,ce,kd,total,grad", GOLDEN)
def test_equals_authors_code(args, epoch, ce, kd, total, grad):
    terms, value, g = _run(kdzoo.build_loss("sdd", **args), epoch)
    assert terms["ce"].item() == pytest.approx(ce, abs=1e-5)
    assert sum(v.item() for k, v in terms.items() if k != "ce") == pytest.approx(kd, abs=1e-5)
    assert value == pytest.approx(total, abs=1e-5)
    assert g == pytest.approx(grad, abs=1e-5)
    # on 8 x 8 maps the authors' SPP and pooling each scale from the map agree
    terms, value2, g2 = _run(kdzoo.build_loss("sdd", **args, pooling="per_scale"), epoch)
    assert value2 == pytest.approx(total, abs=1e-5) and g2 == pytest.approx(grad, abs=1e-5)


# (map side, base, scales, epoch, authors' loss_ce, loss_kd, total, gradient probe); T 4, defaults otherwise
GOLDEN_SPP = [
    (6, "kd", [1, 2], 1, 0.16069600, 1.54390061, 1.70459664, 0.24321124),
    (6, "kd", [1, 2, 4], 1, 0.16069600, 2.63243008, 2.79312611, 0.28428191),
    (6, "dkd", [1, 2], 30, 1.60695994, 11.28234482, 12.88930511, 0.56303376),
    (6, "dkd", [1, 2, 4], 30, 1.60695994, 19.44290924, 21.04986954, 0.27224398),
    (7, "kd", [1, 2], 1, 0.16014422, 1.54501045, 1.70515466, -0.00451755),
    (7, "kd", [1, 2, 4], 1, 0.16014422, 1.93195069, 2.09209490, -0.12943017),
    (7, "dkd", [1, 2], 30, 1.60144222, 14.46385002, 16.06529236, -0.40035975),
    (7, "dkd", [1, 2, 4], 30, 1.60144222, 17.91596222, 19.51740456, -1.59179306),
    (14, "kd", [1, 2], 1, 0.16168968, 0.86939770, 1.03108740, -0.00067589),
    (14, "kd", [1, 2, 4], 1, 0.16168968, 0.90421653, 1.06590617, -0.00052813),
    (14, "dkd", [1, 2], 30, 1.61689675, 7.96183634, 9.57873344, -0.00744664),
    (14, "dkd", [1, 2, 4], 30, 1.61689675, 8.23657227, 9.85346889, -0.00538140),
]


@pytest.mark.parametrize("h,base,scales,epoch,ce,kd,total,grad", GOLDEN_SPP)
def test_default_pooling_is_the_authors_spp_on_any_map_size(h, base, scales, epoch, ce, kd, total, grad):
    terms, value, g = _run(kdzoo.build_loss("sdd", base=base, scales=scales), epoch, h)
    assert terms["ce"].item() == pytest.approx(ce, abs=1e-5)
    assert sum(v.item() for k, v in terms.items() if k != "ce") == pytest.approx(kd, rel=1e-6, abs=1e-5)
    assert value == pytest.approx(total, rel=1e-6, abs=1e-5)
    assert g == pytest.approx(grad, rel=1e-5, abs=1e-6)
    # pooling every scale from the map (kdzoo's earlier default, kept as an option) is another loss here
    _, other, _ = _run(kdzoo.build_loss("sdd", base=base, scales=scales, pooling="per_scale"), epoch, h)
    assert abs(other - total) > 0.03 * total


def test_spp_cells_are_block_means_of_the_4x4_grid():
    """Written out independently: a 7 x 7 map's 4 x 4 adaptive cells (rows/cols [0:2], [1:4], [3:6], [5:7]),
    the 2 x 2 cells as means of 2 x 2 blocks of those, the 1 x 1 cell as the mean of all 16."""
    fmap = torch.arange(49, dtype=torch.float32).view(1, 1, 7, 7) ** 1.5
    spans = [(0, 2), (1, 4), (3, 6), (5, 7)]
    grid = torch.tensor([[fmap[0, 0, a:b, c:d].mean() for c, d in spans] for a, b in spans])
    want = [grid.mean()] + [grid[i:i + 2, j:j + 2].mean() for i in (0, 2) for j in (0, 2)]
    got = region_logits(fmap, nn.Identity(), [1, 2]).flatten()
    torch.testing.assert_close(got, torch.stack(want))
    assert not torch.allclose(region_logits(fmap, nn.Identity(), [1, 2], "per_scale").flatten(), got)


# SDD-NKD: the authors' multi_nkd_loss (SDD_nkd.py) with its nkd_loss mask fixed as in cls_KD after 9466b3f
# (``sed 's/scatter_(1, label, 1)/scatter_(1, label, 0)/'``, kdzoo's nkd is the fixed NKD), through
# SDD_NKDLoss.forward_train: ce + min(epoch / 20, 1) * multi_nkd_loss(patch_s, patch_t, y, T, gamma).
GOLDEN_NKD = [
    ({"base": "nkd"}, 30, 1.64336777, 196.04049683, 197.68386841, -0.82637107),              # T 4, gamma 8, M [1,2]
    ({"base": "nkd", "scales": [1, 2, 4], "base_args": {"temperature": 2.0, "gamma": 1.5}}, 5,
     1.64336777, 2.83010054, 4.47346830, 0.07576213),
]


@pytest.mark.parametrize("args,epoch,ce,kd,total,grad", GOLDEN_NKD)
def test_nkd_base_equals_authors_code_with_the_fixed_mask(args, epoch, ce, kd, total, grad):
    terms, value, g = _run(kdzoo.build_loss("sdd", **args), epoch)
    assert terms["ce"].item() == pytest.approx(ce, abs=1e-5)
    assert value == pytest.approx(total, rel=1e-6, abs=1e-5)
    assert g == pytest.approx(grad, abs=1e-5)


def test_default_is_sd_kd_with_scales_1_2():
    loss = kdzoo.build_loss("sdd")
    assert (loss.base, loss.scales, loss.complementary_weight, loss.warmup) == ("kd", [1, 2], 2.0, 0.0)
    assert loss.pooling == "spp"
    assert kdzoo.build_loss("sdd", base="dkd").warmup == 20.0
    assert loss.requires == "features" and loss.needs == frozenset({"feature_maps"})


def test_regions_and_weights_against_plain_loops():
    """Region r of sample i is the mean over its cell, put through the classifier; a region is
    complementary when its teacher prediction is right and the global one wrong, or vice versa."""
    s_map, t_map, fs, ft, y = _inputs()
    z = region_logits(t_map, ft, [1, 2, 4])
    rows, r = [], 0
    for s in (1, 2, 4):
        step = H // s
        for a in range(s):
            for b in range(s):
                for i in range(N):
                    cell = t_map[i, :, a * step:(a + 1) * step, b * step:(b + 1) * step]
                    rows.append(ft(cell.mean(dim=(1, 2))))
                r += 1
    torch.testing.assert_close(z, torch.stack(rows), rtol=1e-5, atol=1e-5)
    w = region_weights(z, y, N, 2.0).view(21, N)
    pred = z.argmax(1).view(21, N)
    for r in range(21):
        for i in range(N):
            flipped = r > 0 and bool(pred[r, i] == y[i]) != bool(pred[0, i] == y[i])
            assert w[r, i].item() == (2.0 if flipped else 1.0)
    assert 0 < int((w == 2).sum()) < w.numel()   # the inputs exercise both kinds of regions


def test_complementary_weight_one_is_the_plain_region_average_of_kd():
    s_map, t_map, fs, ft, y = _inputs()
    loss = kdzoo.build_loss("sdd", scales=[1, 2, 4], complementary_weight=1.0)
    terms, _, _ = _run(loss, 1)
    zs, zt = region_logits(s_map, fs, [1, 2, 4]), region_logits(t_map, ft, [1, 2, 4])
    ref = 0.9 * 16 * torch.nn.functional.kl_div(torch.log_softmax(zs / 4, 1), torch.softmax(zt / 4, 1),
                                                 reduction="batchmean")
    torch.testing.assert_close(terms["kd"], ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args,match", [
    ({"base": "rld"}, "unknown base"),
    ({"scales": [2, 4]}, "starting at 1"),
    ({"scales": [1, 4, 2]}, "increasing"),
    ({"base": "dkd", "base_args": {"warmup": 5}}, "sdd's own 'warmup'"),
    ({"base": "kd", "base_args": {"temperatur": 2}}, "temperature"),
    ({"pooling": "spd"}, "unknown pooling 'spd'; did you mean 'spp'"),
])
def test_bad_settings_are_one_line_errors(args, match):
    with pytest.raises(ConfigError, match=match) as e:
        kdzoo.build_loss("sdd", **args)
    assert "\n" not in str(e.value)


def test_missing_feature_maps_is_a_config_error():
    s = torch.randn(4, K)
    with pytest.raises(ConfigError, match="access 'features'"):
        kdzoo.build_loss("sdd")(s, s, torch.zeros(4, dtype=torch.long))


# --------------------------------------------------------------- access level and models

def test_features_access_is_above_logits_and_refused_below():
    check_access("sdd", "features", "features")
    for level in ("logits", "probs", "topk:3", "label", "none"):
        with pytest.raises(AccessError, match="'features'"):
            check_access("sdd", "features", level)
    check_access("kd", "label", "features")   # every logit loss works with a white-box teacher


def test_teacher_reveals_maps_only_at_features_access():
    torch.manual_seed(0)
    model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=10)
    x = torch.randn(3, 1, 28, 28)
    white = Teacher(model, "features", budget=6)
    fmap = white.feature_map(x)
    assert fmap.shape == (3, 16, 14, 14) and white.queries == 3
    torch.testing.assert_close(white.classifier(fmap.mean(dim=(2, 3))), white(x))
    for level in ("logits", "probs", "label"):
        black = Teacher(model, level)
        with pytest.raises(AccessError, match="needs teacher access 'features'"):
            black.feature_map(x)
        with pytest.raises(AccessError, match="needs teacher access 'features'"):
            black.classifier
        assert black.queries == 0
    with pytest.raises(AccessError, match="budget"):
        white.feature_map(torch.randn(4, 1, 28, 28))


def _conv_models():
    return [n for n in MODELS.names() if MODELS.entry(n).factory.__module__.startswith(
        ("kdzoo.models.cifar_", "kdzoo.models.small")) and n != "fmnist_mlp"]


@pytest.mark.parametrize("name", _conv_models())
def test_model_forward_is_classifier_of_pooled_feature_map(name):
    small = name.startswith("fmnist")
    model = kdzoo.build_model(name, num_classes=10 if small else 100).eval()
    x = torch.randn(2, 1 if small else 3, 28 if small else 32, 28 if small else 32,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fmap = model.forward_feature_map(x)
        assert fmap.dim() == 4 and fmap.shape[0] == 2
        torch.testing.assert_close(model.classifier(fmap.mean(dim=(2, 3))), model(x), rtol=1e-4, atol=1e-5)
    assert "classifier" not in dict(model.named_children()) or name.startswith(("vgg", "mobilenet"))


def test_models_without_a_spatial_map_are_named():
    mlp = kdzoo.build_model("fmnist_mlp", num_classes=10)
    with pytest.raises(ConfigError, match="MLP exposes no spatial feature map"):
        Teacher(mlp, "features").feature_map(torch.randn(1, 1, 28, 28))


def test_recipe_refuses_sdd_at_black_box_access():
    text = """\
name: t
dataset: fashion-mnist
teachers: {fmnist_cnn_tiny: {train: {epochs: 1}}}
pairs: [{teacher: fmnist_cnn_tiny, student: fmnist_cnn_tiny}]
methods: [kd, sdd]
access: [logits]
seeds: [0]
train: {epochs: 1}
"""
    with pytest.raises(ConfigError, match="'sdd' needs teacher access 'features'"):
        parse_recipe(text)
    r = parse_recipe(text.replace("methods: [kd, sdd]", "methods: [kd, {name: sdd, access: [features]}]"))
    assert r.access_for(r.methods[1]) == ["features"]


# ---------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    from kdzoo.bench.execution.run import execute
    from kdzoo.bench.spec import RunSpec
    from kdzoo.engine import TrainConfig

    root = tmp_path_factory.mktemp("sdd_teacher")
    spec = RunSpec(dataset="fashion-mnist", student="fmnist_cnn_tiny", method="ce", seed=7,
                   train=TrainConfig(epochs=1, steps_per_epoch=8, batch_size=64, device="cpu", lr=0.1))
    assert execute(spec, root, progress=False, log=lambda _m: None)["status"] == "finished"
    return str(root / MODEL)


def _spec(method, ckpt, access="features", student="fmnist_cnn_tiny", **args):
    from kdzoo.bench.spec import RunSpec
    from kdzoo.engine import TrainConfig

    return RunSpec(dataset="fashion-mnist", student=student, method=method, loss_kwargs=args,
                   teacher="fmnist_cnn_tiny", teacher_ckpt=ckpt, access=access, seed=0, augment=True,
                   train=TrainConfig(epochs=1, steps_per_epoch=4, batch_size=32, device="cpu", lr=0.05))


def _weights(run_dir):
    return torch.load(run_dir / MODEL, weights_only=True)


@needs_fmnist
def test_trains_fashion_mnist_solo_and_in_cohort_equally(teacher_ckpt, tmp_path):
    from kdzoo.bench.execution.run import execute, execute_cohort

    specs = {"sdd": _spec("sdd", teacher_ckpt), "sdd_dkd": _spec("sdd", teacher_ckpt, base="dkd", scales=[1, 2]),
             "kd": _spec("kd", teacher_ckpt)}
    solo = {n: execute(s, tmp_path / "solo" / n, progress=False, log=lambda _m: None) for n, s in specs.items()}
    dirs = [tmp_path / "cohort" / n for n in specs]
    cohort = dict(zip(specs, execute_cohort(list(specs.values()), dirs, progress=False, log=lambda _m: None)))
    for n in specs:
        a, b = solo[n], cohort[n]
        assert a["status"] == b["status"] == "finished", (a["message"], b["message"])
        for k in ("top1", "top5", "epochs", "teacher_queries"):
            assert a[k] == b[k], (n, k)
        wa, wb = _weights(tmp_path / "solo" / n), _weights(tmp_path / "cohort" / n)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), n
    images = 4 * 32
    assert solo["kd"]["teacher_queries"] == solo["sdd"]["teacher_queries"] == images   # the map comes with the logits


@needs_fmnist
def test_member_without_the_need_is_bit_identical_to_before(teacher_ckpt, tmp_path):
    """kd at 'features' access trains exactly as at 'logits' access, alone or beside sdd."""
    from kdzoo.bench.execution.run import execute, execute_cohort

    ref = execute(_spec("kd", teacher_ckpt, access="logits"), tmp_path / "ref", progress=False, log=lambda _m: None)
    dirs = [tmp_path / "c" / "kd", tmp_path / "c" / "sdd"]
    recs = execute_cohort([_spec("kd", teacher_ckpt), _spec("sdd", teacher_ckpt)], dirs, progress=False,
                          log=lambda _m: None)
    assert recs[0]["top1"] == ref["top1"]
    wa, wb = _weights(tmp_path / "ref"), _weights(dirs[0])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@needs_fmnist
def test_sdd_refuses_a_student_without_feature_map_and_a_black_box_teacher(teacher_ckpt, tmp_path):
    from kdzoo.bench.execution.run import execute

    with pytest.raises(ConfigError, match="MLP exposes no spatial feature map") as e:
        execute(_spec("sdd", teacher_ckpt, student="fmnist_mlp"), tmp_path / "a", progress=False, log=lambda _m: None)
    assert "\n" not in str(e.value)
    with pytest.raises(AccessError, match="needs teacher access 'features'"):
        execute(_spec("sdd", teacher_ckpt, access="logits"), tmp_path / "b", progress=False, log=lambda _m: None)


def test_recipe_pair_without_a_feature_map_must_skip_sdd(tmp_path):
    text = """\
name: t
dataset: fashion-mnist
teachers: {fmnist_cnn_tiny: {train: {epochs: 1}}}
pairs: [{teacher: fmnist_cnn_tiny, student: fmnist_cnn_tiny}, {teacher: fmnist_cnn_tiny, student: fmnist_mlp}]
methods: [kd, {name: sdd, access: [features]}]
seeds: [0]
train: {epochs: 1}
"""
    with pytest.raises(ConfigError, match=r"needs spatial feature maps, which model 'fmnist_mlp' lacks; "
                                          r"add 'skip: \[sdd\]'"):
        parse_recipe(text)
    with pytest.raises(ConfigError, match="'sdt' is not a method label; did you mean 'sdd'"):
        parse_recipe(text.replace("student: fmnist_mlp}", "student: fmnist_mlp, skip: [sdt]}"))
    r = parse_recipe(text.replace("student: fmnist_mlp}", "student: fmnist_mlp, skip: [sdd]}"))
    plan = expand(r, tmp_path)
    runs = {(e.student, e.label) for e in plan.entries if e.role == "student"}
    assert ("fmnist_cnn_tiny", "sdd") in runs and ("fmnist_mlp", "sdd") not in runs and ("fmnist_mlp", "kd") in runs


@pytest.mark.parametrize("cache", [False, True])
def test_teacher_map_is_computed_once_per_batch_for_the_cohort(cache):
    """Two members needing maps and one that does not: one teacher map per batch for the cohort. It
    comes with the batch's query; with cached logits (fixed inputs) it is a live query of its own,
    charged to the two that asked."""
    torch.manual_seed(0)
    teacher_model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4)
    teacher = Teacher(teacher_model, "features")
    calls = []
    plain_map = teacher.feature_map
    teacher.feature_map = lambda x: calls.append(x.shape[0]) or plain_map(x)
    bundle = make_bundle()

    def student():
        torch.manual_seed(1)
        return kdzoo.build_model("fmnist_cnn_tiny", num_classes=4)

    members = [Member("a", student(), kdzoo.build_loss("sdd")),
               Member("b", student(), kdzoo.build_loss("sdd", base="dkd")),
               Member("kd", student(), kdzoo.build_loss("kd"))]
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.05, device="cpu", cache_teacher=cache)
    results = Trainer(members, make_loader(bundle, "train", 16, train=True, seed=0),
                      {"test": make_loader(bundle, "test", 48, train=False)}, teacher, cfg, progress=False).fit()
    assert [r.status for r in results] == ["finished"] * 3
    assert calls == [16] * 6                                          # 96 images, 6 batches
    if cache:   # one pass for the logit table, then the maps live
        assert [r.teacher_queries for r in results] == [192, 192, 96] and teacher.queries == 192
    else:
        assert [r.teacher_queries for r in results] == [96, 96, 96] and teacher.queries == 96


@pytest.mark.parametrize("name,spatial", [("tv:resnet18", True), ("timm:mobilenetv1_100", True),
                                          ("timm:resnet18", True), ("tv:mobilenet_v2", False)])
def test_external_models_expose_their_map_where_kdzoo_can_reach_it(name, spatial):
    pytest.importorskip(name.split(":")[0].replace("tv", "torchvision"))
    model = kdzoo.build_model(name, num_classes=10).eval()
    plain = kdzoo.build_model(name, num_classes=10)
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    if not spatial:
        with pytest.raises(ConfigError, match=f"model {name} exposes no spatial feature map"):
            Teacher(model, "features").feature_map(x)
        return
    with torch.no_grad():
        fmap = model.forward_feature_map(x)
        assert fmap.dim() == 4
        torch.testing.assert_close(model.classifier(fmap.mean(dim=(2, 3))), model(x), rtol=1e-4, atol=1e-5)


def test_listing_shows_year_venue_and_needs(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")          # a terminal wide enough for one line per loss
    info = kdzoo.loss_info("sdd")
    assert (info["year"], info["venue"], info["requires"], info["needs"]) == (2024, "CVPR", "features", ["feature_maps"])
    assert main(["list", "losses"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("sdd "))
    assert "2024" in row and "CVPR" in row and "feature_maps" in row


@needs_fmnist
def test_every_kind_of_need_in_one_cohort_equals_solo(teacher_ckpt, tmp_path):
    """The bench puts every method of a pair and seed into one cohort: a feature-map loss (sdd), a two-view
    loss (mlkd), a loss with its own trained parameters (ctkd) and plain kd then train side by side. Each
    must end exactly as when trained alone (same weights, same teacher queries)."""
    from kdzoo.bench.execution.run import execute, execute_cohort

    specs = {n: _spec(n, teacher_ckpt) for n in ("kd", "sdd", "mlkd", "ctkd")}
    quiet = dict(progress=False, log=lambda _m: None)
    dirs = [tmp_path / "cohort" / n for n in specs]
    cohort = dict(zip(specs, execute_cohort(list(specs.values()), dirs, **quiet)))
    for n, spec in specs.items():
        solo = execute(spec, tmp_path / "solo" / n, **quiet)
        assert solo["status"] == cohort[n]["status"] == "finished", (n, solo["message"], cohort[n]["message"])
        assert solo["top1"] == cohort[n]["top1"] and solo["teacher_queries"] == cohort[n]["teacher_queries"], n
        wa, wb = _weights(tmp_path / "solo" / n), _weights(tmp_path / "cohort" / n)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), n
    assert cohort["mlkd"]["teacher_queries"] == 2 * cohort["kd"]["teacher_queries"]   # the strong view is queried too
