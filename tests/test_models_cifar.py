"""CIFAR model zoo: published parameter counts, checkpoint key layout, load_weights errors, timm/tv adapters."""
from __future__ import annotations

import pytest
import torch

import kdzoo
from kdzoo.errors import CheckpointError, ConfigError
from kdzoo.models import create
from kdzoo.models.checkpoint import load_weights

# Parameter counts at num_classes=100 of the RepDistiller / mdistiller CIFAR definitions
# (github.com/HobbitLong/RepDistiller models/*.py, megvii-research/mdistiller mdistiller/models/cifar/*.py),
# worked out by hand from those definitions: conv k*k*cin*cout/groups (+cout bias in VGG), BN 2c,
# linear in*out+out. They agree with the papers' tables, e.g. resnet56 0.86M, resnet110 1.74M,
# resnet8x4 1.23M, resnet32x4 7.43M, wrn_40_2 2.26M, vgg13 9.46M, MobileNetV2 0.81M, ShuffleV1 0.95M,
# ShuffleV2 1.36M, ResNet50 23.71M (CRD, Tian et al. ICLR 2020; DKD, Zhao et al. CVPR 2022).
PUBLISHED_PARAMS = {
    "resnet8": 83_892, "resnet14": 181_108, "resnet20": 278_324, "resnet32": 472_756,
    "resnet44": 667_188, "resnet56": 861_620, "resnet110": 1_736_564,
    "resnet8x4": 1_233_540, "resnet32x4": 7_433_860,
    "wrn_16_1": 180_916, "wrn_16_2": 703_284, "wrn_40_1": 569_780, "wrn_40_2": 2_255_156,
    "vgg8": 3_965_028, "vgg11": 9_277_284, "vgg13": 9_462_180, "vgg16": 14_774_436, "vgg19": 20_086_692,
    "mobilenetv2": 812_836, "shufflenetv1": 949_258, "shufflenetv2": 1_355_528, "resnet50": 23_705_252,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_param_count_and_forward(name):
    torch.manual_seed(0)
    model = create(name, num_classes=100).eval()
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 100)
    assert feats.shape == (2, model.num_features)


def test_zoo_is_registered_and_takes_in_channels():
    names = kdzoo.list_models()
    assert set(PUBLISHED_PARAMS) <= set(names)
    model = kdzoo.build_model("resnet8", num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 10)


# ---- the published checkpoint layout, written out independently of kdzoo's modules ----

def _conv(key, cin, cout, k, bias=False):
    out = {f"{key}.weight": (cout, cin, k, k)}
    if bias:
        out[f"{key}.bias"] = (cout,)
    return out


def _bn(key, c):
    return {f"{key}.weight": (c,), f"{key}.bias": (c,), f"{key}.running_mean": (c,), f"{key}.running_var": (c,),
            f"{key}.num_batches_tracked": ()}


def resnet_layout(depth, widths, classes=100):
    n = (depth - 2) // 6
    keys = {**_conv("conv1", 3, widths[0], 3), **_bn("bn1", widths[0])}
    cin = widths[0]
    for stage, cout in enumerate(widths[1:], start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            keys.update({**_conv(f"{p}.conv1", cin, cout, 3), **_bn(f"{p}.bn1", cout),
                         **_conv(f"{p}.conv2", cout, cout, 3), **_bn(f"{p}.bn2", cout)})
            if b == 0 and (stage > 1 or cin != cout):
                keys.update({**_conv(f"{p}.downsample.0", cin, cout, 1), **_bn(f"{p}.downsample.1", cout)})
            cin = cout
    keys.update({"fc.weight": (classes, cin), "fc.bias": (classes,)})
    return keys


def wrn_layout(depth, k, classes=100):
    n = (depth - 4) // 6
    widths = [16, 16 * k, 32 * k, 64 * k]
    keys = _conv("conv1", 3, 16, 3)
    for stage in range(1, 4):
        for b in range(n):
            cin = widths[stage - 1] if b == 0 else widths[stage]
            cout = widths[stage]
            p = f"block{stage}.layer.{b}"
            keys.update({**_bn(f"{p}.bn1", cin), **_conv(f"{p}.conv1", cin, cout, 3), **_bn(f"{p}.bn2", cout),
                         **_conv(f"{p}.conv2", cout, cout, 3)})
            if cin != cout:
                keys.update(_conv(f"{p}.convShortcut", cin, cout, 1))
    keys.update({**_bn("bn1", widths[3]), "fc.weight": (classes, widths[3]), "fc.bias": (classes,)})
    return keys


def vgg_layout(cfg, classes=100):
    keys, cin = {}, 3
    for i, block in enumerate(cfg):
        for j, cout in enumerate(block):  # Sequential positions: conv 3j, BN 3j+1, ReLU 3j+2
            keys.update({**_conv(f"block{i}.{3 * j}", cin, cout, 3, bias=True), **_bn(f"block{i}.{3 * j + 1}", cout)})
            cin = cout
    keys.update({"classifier.weight": (classes, 512), "classifier.bias": (classes,)})
    return keys


LAYOUTS = {
    "resnet8x4": resnet_layout(8, [32, 64, 128, 256]),
    "resnet32x4": resnet_layout(32, [32, 64, 128, 256]),
    "resnet56": resnet_layout(56, [16, 16, 32, 64]),
    "wrn_40_2": wrn_layout(40, 2),
    "vgg13": vgg_layout([[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]),
}

# a few entries spelled out as they appear in the published cifar_teachers checkpoints
SPOT_CHECKS = {
    "resnet32x4": {"layer3.4.bn2.running_var": (256,), "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                   "fc.weight": (100, 256)},
    "resnet8x4": {"layer1.0.downsample.1.weight": (64,), "conv1.weight": (32, 3, 3, 3)},
    "wrn_40_2": {"block2.layer.0.convShortcut.weight": (64, 32, 1, 1), "block3.layer.5.conv2.weight": (128, 128, 3, 3),
                 "bn1.running_mean": (128,)},
    "vgg13": {"block4.4.weight": (512,), "block0.0.bias": (64,), "block2.3.weight": (256, 256, 3, 3)},
}


def _state_dict(layout, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(240) if k.endswith("num_batches_tracked") else torch.randn(shape, generator=g))
            for k, shape in layout.items()}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_published_layout_loads_strictly(name, tmp_path):
    layout = LAYOUTS[name]
    for key, shape in SPOT_CHECKS.get(name, {}).items():
        assert layout[key] == shape
    sd = _state_dict(layout)
    path = tmp_path / "ckpt_epoch_240.pth"
    torch.save({"model": sd, "epoch": 240, "best_acc": 77.5}, path)
    model = create(name, num_classes=100)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    report = load_weights(model, path)
    assert report == {"missing": [], "unexpected": [], "mismatched": []}
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items())


def test_state_dict_forms_and_module_prefix(tmp_path):
    sd = _state_dict(LAYOUTS["resnet8x4"], seed=1)
    for i, obj in enumerate([sd, {"state_dict": sd}, {"model": {f"module.{k}": v for k, v in sd.items()}}]):
        torch.save(obj, tmp_path / f"{i}.pth")
        model = create("resnet8x4", num_classes=100)
        load_weights(model, tmp_path / f"{i}.pth")
        assert torch.equal(model.fc.bias, sd["fc.bias"])


def test_wrong_checkpoint_names_keys(tmp_path):
    torch.save({"model": _state_dict(LAYOUTS["resnet8x4"])}, tmp_path / "r8x4.pth")
    with pytest.raises(CheckpointError) as err:  # deeper model: blocks missing
        load_weights(create("resnet32x4", num_classes=100), tmp_path / "r8x4.pth")
    msg = str(err.value)
    assert "\n" not in msg and "missing keys" in msg and "layer1.1.conv1.weight" in msg
    with pytest.raises(CheckpointError) as err:  # 10 classes vs 100
        load_weights(create("resnet8x4", num_classes=10), tmp_path / "r8x4.pth")
    assert "shape mismatch" in str(err.value) and "fc.weight [100, 256] in file vs [10, 256]" in str(err.value)
    with pytest.raises(CheckpointError, match="unexpected keys .*layer1.0.downsample"):
        load_weights(create("resnet8", num_classes=100), tmp_path / "r8x4.pth")
    report = load_weights(create("resnet8x4", num_classes=10), tmp_path / "r8x4.pth", strict=False)
    assert [k for k, _, _ in report["mismatched"]] == ["fc.weight", "fc.bias"]
    with pytest.raises(CheckpointError, match="not found: .*nope.pth"):
        load_weights(create("resnet8", num_classes=100), tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_weights(create("resnet8", num_classes=100), tmp_path / "junk.pth")


# ---- timm / torchvision adapters ----

@pytest.mark.parametrize("name, dim", [("timm:resnet18", 512), ("tv:mobilenet_v3_small", 1024)])
def test_external_models_build_and_run(name, dim):
    model = create(name, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        assert model.forward_features(x).shape == (2, dim)
    assert model.num_features == dim


@pytest.mark.parametrize("name, hint", [("timm:resnet181", "resnet18"), ("tv:mobilenet_v3_smal", "mobilenet_v3_small"),
                                        ("tim:resnet18", "timm")])
def test_external_unknown_names_suggest(name, hint):
    with pytest.raises(ConfigError, match=f"did you mean '{hint}'"):
        create(name, num_classes=10)


def test_external_pretrained_from_local_file(tmp_path):
    import torchvision.models as tvm

    source = tvm.mobilenet_v3_small(weights=None)  # stands in for a downloaded ImageNet checkpoint
    torch.save(source.state_dict(), tmp_path / "mbv3.pth")
    model = create("tv:mobilenet_v3_small", num_classes=10, pretrained=str(tmp_path / "mbv3.pth"))
    assert torch.equal(model.net.features[0][0].weight, source.features[0][0].weight)
    assert model.net.classifier[3].weight.shape == (10, 1024)  # new head keeps its fresh init
    with pytest.raises(CheckpointError, match="only the classifier"):
        create("tv:resnet18", num_classes=10, pretrained=str(tmp_path / "mbv3.pth"))


def test_forward_features_by_hand_on_a_tiny_mlp():
    """fmnist_mlp on 1x2x2 images, 2 hidden units, weights set by hand: features = relu(W x + b)."""
    model = create("fmnist_mlp", num_classes=3, in_channels=1, image_size=2, hidden=2).eval()
    lin = model.body[1]
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.5]]))
        lin.bias.copy_(torch.tensor([0.1, -3.0]))
        x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).view(3, 1, 2, 2)
        feats = model.forward_features(x)
    # row 1: 1 - 2 + 0 + 8 + 0.1 = 7.1 and 0.5 * 10 - 3 = 2; row 2: -0.9 and -3.5, both cut to 0; row 3: 2.1, -2.5
    assert torch.allclose(feats, torch.tensor([[7.1, 2.0], [0.0, 0.0], [2.1, 0.0]]), atol=1e-6)


def _bn_eval(x, bn):
    """Eval-mode batch norm written out: (x - running mean) / sqrt(running var + eps) * weight + bias."""
    shape = (1, -1, 1, 1)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def test_forward_features_of_resnet8_equal_a_plainly_written_forward():
    """Transfer evaluation probes these values: the pooled output of the last stage, here recomputed with
    plain conv/BN/ReLU formulas from the model's parameters (random BN statistics, so BN is not identity)."""
    torch.manual_seed(0)
    model = create("resnet8", num_classes=5, in_channels=3).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
        x = torch.randn(2, 3, 32, 32)
        relu = lambda t: t.clamp_min(0)  # noqa: E731
        y = relu(_bn_eval(torch.nn.functional.conv2d(x, model.conv1.weight, padding=1), model.bn1))
        for stage in (model.layer1, model.layer2, model.layer3):
            for block in stage:
                stride = block.conv1.stride
                h = torch.nn.functional.conv2d(y, block.conv1.weight, stride=stride, padding=1)
                h = relu(_bn_eval(h, block.bn1))
                h = _bn_eval(torch.nn.functional.conv2d(h, block.conv2.weight, padding=1), block.bn2)
                short = y if block.downsample is None else _bn_eval(
                    torch.nn.functional.conv2d(y, block.downsample[0].weight, stride=stride), block.downsample[1])
                y = relu(h + short)
        expected = y.sum(dim=(2, 3)) / (y.shape[2] * y.shape[3])
        feats = model.forward_features(x)
        logits = model(x)
    assert y.shape[2:] == (8, 8) and feats.shape == (2, 64)
    assert torch.allclose(feats, expected, atol=1e-5)
    assert torch.allclose(logits, expected @ model.fc.weight.T + model.fc.bias, atol=1e-5)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_forward_features_are_the_classifier_input(name):
    """For every zoo model, logits = features @ W.T + b with the last linear layer: the features transfer
    evaluation probes are exactly what the classifier sees."""
    torch.manual_seed(0)
    model = create(name, num_classes=7).eval()
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
    assert torch.allclose(logits, feats @ head.weight.T + head.bias, atol=1e-4, rtol=1e-4)
