"""wsld, nkd, ttm, wttm and abkd train a Fashion-MNIST student through the real trainer, alone and in one
cohort, with identical results.

A teacher (fmnist_mlp, 30 CE steps) is trained first; then each loss trains an fmnist_mlp student for
2 epochs x 4 steps with augmentation (so the teacher is queried every step), once alone and once in a
cohort of all five. Weights, per-epoch metrics and results (wall-clock fields aside) must be equal.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from kdzoo.bench.run import RunSpec, execute, execute_cohort
from kdzoo.engine import TrainConfig
from kdzoo.engine.runfolder import MODEL as MODEL_FILE

from conftest import FMNIST

pytestmark = pytest.mark.skipif(not (FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                                reason="Fashion-MNIST files not present")

NAMES = ["wsld", "nkd", "ttm", "wttm", "abkd"]
TIMING = {"seconds", "train_seconds", "images_per_second"}


def _metrics(run_dir):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _record(rec):
    return {k: ("nan" if v != v else v) for k, v in rec.items() if k not in TIMING}


def test_solo_and_cohort_runs_are_equal(tmp_path):
    quiet = dict(progress=False, log=lambda _m: None)
    teacher = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method="ce", seed=7,
                      train=TrainConfig(epochs=1, steps_per_epoch=30, device="cpu", lr=0.1))
    assert execute(teacher, tmp_path / "teacher", **quiet)["status"] == "finished"
    cfg = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=32, device="cpu")
    specs = [RunSpec(dataset="fashion-mnist", student="fmnist_mlp", method=name, teacher="fmnist_mlp",
                     teacher_ckpt=str(tmp_path / "teacher" / MODEL_FILE), access="probs", augment=True,
                     seed=1, train=cfg) for name in NAMES]
    solo = {s.method: execute(s, tmp_path / "solo" / s.method, **quiet) for s in specs}
    cohort = execute_cohort(specs, [tmp_path / "cohort" / s.method for s in specs], **quiet)
    for spec, rec in zip(specs, cohort):
        name = spec.method
        assert rec["status"] == solo[name]["status"] == "finished", (name, rec.get("message"))
        assert _record(rec) == _record(solo[name]), name
        metrics = _metrics(tmp_path / "cohort" / name)
        assert metrics == _metrics(tmp_path / "solo" / name), name
        assert len(metrics) == 2 and all(math.isfinite(v) for m in metrics for v in m["train"].values()), name
        assert set(metrics[0]["train"]) > {"ce"}, f"{name}: no distillation term logged"
        a = torch.load(tmp_path / "cohort" / name / MODEL_FILE)
        b = torch.load(tmp_path / "solo" / name / MODEL_FILE)
        assert all(torch.equal(a[k], b[k]) for k in a), name
