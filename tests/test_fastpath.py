"""The GPU fast path: AMP, channels_last, GPU-resident data, a step without host syncs.

The CPU tests run everywhere; the CUDA ones are skipped on machines without a GPU.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import kdzoo
from kdzoo.data.base import Augment
from kdzoo.data.loader import TensorLoader
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.engine.device import amp_dtype
from kdzoo.engine.optim import make_optimizer
from kdzoo.teachers import Teacher

from conftest import make_bundle

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _net(seed: int, channels: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def _fit(members, device="cpu", epochs=2, loader_kw=None, **cfg):
    bundle = make_bundle(channels=3)
    bundle.augment = Augment(crop_padding=1, flip=True)
    config = TrainConfig(epochs=epochs, batch_size=16, lr=0.1, device=device, **cfg)
    train = TensorLoader(bundle.train, 16, mean=bundle.mean, std=bundle.std, shuffle=True, augment=bundle.augment,
                         device=device, channels_last=config.channels_last, **(loader_kw or {}))
    test = {"test": TensorLoader(bundle.test, 64, mean=bundle.mean, std=bundle.std, device=device)}
    torch.manual_seed(123)
    teacher = Teacher(kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=3, image_size=8))
    return Trainer(members, train, test, teacher, config, progress=False).fit()


def test_amp_is_off_on_cpu_and_bf16_or_fp16_on_request():
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is None and amp_dtype("bf16", cpu) is None
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        assert amp_dtype("fp16", gpu) is torch.float16
        assert amp_dtype("off", gpu) is None
        assert amp_dtype("auto", gpu) is (torch.bfloat16 if torch.cuda.is_bf16_supported() else None)


def test_optimizers_are_fused_where_available():
    params = [nn.Parameter(torch.randn(3))]
    for name in ("sgd", "adamw"):
        opt = make_optimizer(TrainConfig(optimizer=name, device="cpu"), params)
        assert opt.param_groups[0].get("fused") is True, name


def test_channels_last_training_on_cpu():
    m = Member("kd", _net(0), kdzoo.build_loss("kd"))
    (r,) = _fit([m], channels_last=True)
    assert r.status == "finished"
    assert m.student[0].weight.is_contiguous(memory_format=torch.channels_last)


@cuda
def test_step_makes_no_host_device_sync():  # pragma: no cover - runs only on a GPU
    """Between the first and the last batch, nothing in the loop waits for the GPU."""
    bundle = make_bundle(n_train=160, channels=3)
    bundle.augment = Augment(crop_padding=1, flip=True)
    inner = TensorLoader(bundle.train, 16, mean=bundle.mean, std=bundle.std, shuffle=True, augment=bundle.augment,
                         device="cuda")

    class SyncWatch:
        """Turns CUDA's sync debug mode to 'error' after the first batch, off after the last."""
        deterministic = False
        num_samples = inner.num_samples

        def set_epoch(self, e):
            inner.set_epoch(e)

        def __len__(self):
            return len(inner)

        def __iter__(self):
            for k, batch in enumerate(inner):
                if k == 1:
                    torch.cuda.set_sync_debug_mode("error")
                yield batch
            torch.cuda.set_sync_debug_mode("default")

    cfg = TrainConfig(epochs=1, batch_size=16, device="cuda", amp="bf16", channels_last=True,
                      nonfinite_check_every=10 ** 6, grad_clip=1.0)
    members = [Member(n, _net(0).cuda(), kdzoo.build_loss(n)) for n in ("ce", "kd", "kd+ls")]
    torch.manual_seed(123)
    teacher = Teacher(kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=3, image_size=8))
    try:
        results = Trainer(members, SyncWatch(), {}, teacher, cfg, progress=False).fit()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(r.status == "finished" for r in results)


@cuda
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_gpu_cohort_equals_solo(amp):  # pragma: no cover - runs only on a GPU
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    names = ["ce", "kd", "kd+ls"]
    solo = {}
    for n in names:
        m = Member(n, _net(0), kdzoo.build_loss(n))
        _fit([m], device="cuda", amp=amp, channels_last=True)
        solo[n] = m.student
    members = [Member(n, _net(0), kdzoo.build_loss(n)) for n in names]
    results = _fit(members, device="cuda", amp=amp, channels_last=True)
    for m, r in zip(members, results):
        assert r.status == "finished"
        for a, b in zip(m.student.state_dict().values(), solo[m.name].state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@cuda
def test_gpu_training_from_host_storage_matches_gpu_storage():  # pragma: no cover - runs only on a GPU
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    a = Member("kd", _net(0), kdzoo.build_loss("kd"))
    b = Member("kd", _net(0), kdzoo.build_loss("kd"))
    _fit([a], device="cuda")
    _fit([b], device="cuda", loader_kw={"storage": "cpu"})
    for x, y in zip(a.student.state_dict().values(), b.student.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)
