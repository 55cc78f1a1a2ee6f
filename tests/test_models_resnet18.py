"""The CIFAR ResNet18 of RepDistiller / mdistiller: parameter count, checkpoint key layout, feature hooks.

The layout below is written out by hand from megvii-research/mdistiller
mdistiller/models/cifar/resnetv2.py (commit a08d46f, ``ResNet18 = ResNet(BasicBlock, [2, 2, 2, 2])``),
the same definition as HobbitLong/RepDistiller models/resnetv2.py. Running that file's ``ResNet18(num_classes=100)``
next to kdzoo's gives identical state-dict keys, shapes and order, and equal logits after a strict load
(checked once in /tmp; the file is not copied into the repository).
"""
from __future__ import annotations

import torch

import kdzoo
from kdzoo.models import create
from kdzoo.models.checkpoint import load_weights

# 11,220,132 = stem 1,856 + layer1 147,968 + layer2 525,568 + layer3 2,099,712 + layer4 8,393,728 + linear 51,300
PARAMS_AT_100 = 11_220_132


def _conv(key: str, cin: int, cout: int, k: int) -> dict:
    return {f"{key}.weight": (cout, cin, k, k)}


def _bn(key: str, c: int) -> dict:
    return {f"{key}.weight": (c,), f"{key}.bias": (c,), f"{key}.running_mean": (c,), f"{key}.running_var": (c,),
            f"{key}.num_batches_tracked": ()}


def resnet18_layout(classes: int = 100) -> dict:
    keys = {**_conv("conv1", 3, 64, 3), **_bn("bn1", 64)}
    cin = 64
    for stage, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for b in range(2):
            p = f"layer{stage}.{b}"
            keys.update({**_conv(f"{p}.conv1", cin, cout, 3), **_bn(f"{p}.bn1", cout),
                         **_conv(f"{p}.conv2", cout, cout, 3), **_bn(f"{p}.bn2", cout)})
            if b == 0 and (stride != 1 or cin != cout):
                keys.update({**_conv(f"{p}.shortcut.0", cin, cout, 1), **_bn(f"{p}.shortcut.1", cout)})
            cin = cout
    keys.update({"linear.weight": (classes, 512), "linear.bias": (classes,)})
    return keys


def test_param_count_forward_and_features():
    assert "resnet18" in kdzoo.list_models()
    torch.manual_seed(0)
    model = create("resnet18", num_classes=100).eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS_AT_100
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        fmap = model.forward_feature_map(x)
        assert torch.allclose(model.classifier(fmap.mean(dim=(2, 3))), logits, atol=1e-5)
    assert logits.shape == (2, 100) and feats.shape == (2, model.num_features) == (2, 512)
    assert fmap.shape == (2, 512, 4, 4)


def test_published_layout_loads_strictly(tmp_path):
    layout = resnet18_layout()
    # spot checks as the keys appear in RepDistiller-style checkpoints
    assert layout["layer2.0.shortcut.0.weight"] == (128, 64, 1, 1) and "layer1.0.shortcut.0.weight" not in layout
    assert sum(torch.Size(s).numel() for k, s in layout.items()
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))) == PARAMS_AT_100
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.tensor(240) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g))
          for k, s in layout.items()}
    torch.save({"model": sd, "epoch": 240}, tmp_path / "ckpt_epoch_240.pth")
    model = create("resnet18", num_classes=100)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == layout
    assert load_weights(model, tmp_path / "ckpt_epoch_240.pth") == {"missing": [], "unexpected": [], "mismatched": []}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())


def test_grey_input_and_ten_classes():
    model = kdzoo.build_model("resnet18", num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)
