"""Every built-in loss trains a real Fashion-MNIST student for a couple of epochs without diverging.

One module-scoped run: a teacher (fmnist_mlp after a few dozen CE steps, ~70% top-1)
is trained first, then every built-in loss trains an fmnist_mlp student in one cohort
(2 epochs x 20 steps, same batches and initial weights). Each loss then gets its own
test: run finished, every logged loss term finite, test top-1 well above chance (10%).
Losses with a preparation stage (mekd's generator) cannot join a cohort and have their
own tests.
"""
from __future__ import annotations

import json
import math

import pytest

import kdzoo
from kdzoo.losses.base import has_preparation
from kdzoo.registry import LOSSES

from conftest import needs_fmnist

pytestmark = needs_fmnist

STEPS, EPOCHS = 20, 2
MIN_TOP1 = 50.0   # chance is 10%; CE alone reaches ~75% in these 40 steps, the weakest loss (dist) ~64%
# Losses whose paper defaults do not fit this 40-step MLP run. ttm: the README's weight 45 on a KL at
# temperature 1 is a 45x step at lr 0.05; this MLP (no BatchNorm) collapses to chance (10.7% measured,
# also at gamma 0.25 and 0.5), while weight 10 reaches 69.8% (kd: 71.5%).
SETTINGS = {"ttm": {"kd_weight": 10.0}}
# At their CIFAR-100 defaults these outweigh CE on this 10-class MLP (no BatchNorm to absorb the
# gradient scale) at lr 0.05: five temperatures of T²-scaled KD on two views, and MLKD's correlation
# terms, which grow with batch² / classes (measured top-1 after 40 steps: mlkd 11%, mlkd+ls 12%,
# crld 37%). Here they must finish with finite terms; tests/test_views.py trains mlkd and crld at the
# authors' batch 64 and a smaller lr above 60%.
TOO_STRONG_FOR_THIS_LR = {"mlkd", "mlkd+ls", "crld"}


def builtin_losses() -> list[str]:
    names = []
    for name in LOSSES.names():
        entry = LOSSES.entry(name)
        if entry.source != "kdzoo":
            continue  # plugins registered by other tests
        loss = kdzoo.build_loss(name)
        if has_preparation(loss):
            continue  # preparation stage (mekd): trains alone, tested in its own file
        if "feature_maps" in loss.needs:
            continue  # needs a convolutional student and white-box teacher: own end-to-end test (sdd)
        names.append(name)
    return names


LOSS_NAMES = builtin_losses()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from kdzoo.bench.execution.run import execute, execute_cohort
    from kdzoo.bench.spec import RunSpec
    from kdzoo.engine.runfolder import MODEL as MODEL_FILE
    from kdzoo.engine import TrainConfig

    root = tmp_path_factory.mktemp("losses_train")
    teacher = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method="ce", seed=123,
                      train=TrainConfig(epochs=1, steps_per_epoch=60, device="cpu", lr=0.1))
    t_rec = execute(teacher, root / "teacher", progress=False, log=lambda _m: None)
    assert t_rec["status"] == "finished" and t_rec["top1"] > 60, t_rec
    cfg = TrainConfig(epochs=EPOCHS, steps_per_epoch=STEPS, device="cpu")
    specs = [RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method=name, loss_kwargs=SETTINGS.get(name, {}),
                     teacher="fmnist_mlp",
                     teacher_ckpt=str(root / "teacher" / MODEL_FILE), access="logits", seed=0, train=cfg)
             for name in LOSS_NAMES]
    dirs = [root / name.replace("+", "_") for name in LOSS_NAMES]
    records = execute_cohort(specs, dirs, progress=False, log=lambda _m: None)
    out = {}
    for name, d, rec in zip(LOSS_NAMES, dirs, records):
        metrics = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        out[name] = (rec, metrics)
    return t_rec, out


def test_every_builtin_loss_is_covered():
    assert {"ce", "kd", "kd+ls", "dkd", "dkd+ls", "dist", "rld", "rld+ls", "mcld", "mse",
            "wsld", "nkd", "ttm", "wttm", "abkd"} <= set(LOSS_NAMES)
    assert "mekd" not in LOSS_NAMES


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_trains_fashion_mnist_student(trained, name):
    teacher, runs = trained
    rec, metrics = runs[name]
    assert rec["status"] == "finished", rec["message"]
    assert rec["epochs"] == EPOCHS and len(metrics) == EPOCHS
    for m in metrics:
        assert m["train"], f"{name}: no loss terms logged"
        for term, value in m["train"].items():
            assert math.isfinite(value), f"{name}: term {term} = {value} in epoch {m['epoch']}"
    if name in TOO_STRONG_FOR_THIS_LR:
        return
    # rose well above chance, and the label term went down (the whole objective may rise
    # while a warm-up ramps a distillation term in)
    assert rec["top1"] > MIN_TOP1, f"{name}: test top-1 {rec['top1']:.2f} after {EPOCHS * STEPS} steps"
    assert metrics[-1]["train"]["ce"] < metrics[0]["train"]["ce"], f"{name}: CE term did not decrease"
