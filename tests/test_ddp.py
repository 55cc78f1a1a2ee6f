"""One run on several processes: batch sharding, and torchrun with 2 gloo processes == one process."""
import json
import os
import subprocess
import sys

import pytest
import torch

import kdzoo
from kdzoo.data.base import Augment
from kdzoo.data.loader import DatasetLoader, TensorLoader, num_batches, shard_bounds
from kdzoo.engine import distributed
from kdzoo.errors import ConfigError

import ddp_worker
from conftest import REPO, make_bundle


def test_shards_of_every_global_batch_make_up_the_one_process_batches():
    b = make_bundle(n_train=70)

    def batches(world: int, rank: int, augment: Augment) -> list:
        loader = TensorLoader(b.train, 16, mean=b.mean, std=b.std, shuffle=True, augment=augment, seed=3,
                              world_size=world, rank=rank)
        loader.set_epoch(2)
        return list(loader)

    for augment in (Augment(crop_padding=2, flip=True), Augment()):
        one = batches(1, 0, augment)
        ranks = [batches(3, r, augment) for r in range(3)]
        assert all(len(r) == len(one) == 5 for r in ranks)
        for i, batch in enumerate(one):
            for j in range(3):       # x, y, index: crops and flips included
                assert torch.equal(torch.cat([r[i][j] for r in ranks]), batch[j])
        assert [r[0][0].shape[0] for r in ranks] == [6, 5, 5]   # contiguous, near-equal slices

    ds = torch.utils.data.TensorDataset(torch.randn(70, 3), torch.arange(70))

    def order(world: int, rank: int) -> list:
        loader = DatasetLoader(ds, 16, shuffle=True, seed=1, workers=0, world_size=world, rank=rank)
        loader.set_epoch(3)
        return [batch[2] for batch in loader]

    one, ranks = order(1, 0), [order(2, r) for r in range(2)]
    assert len(one) == 5 and all(torch.equal(torch.cat([r[i] for r in ranks]), one[i]) for i in range(5))
    # a last batch too small to give every rank an image is dropped; bounds cover everything once
    assert num_batches(70, 23, False, 1) == 4 and num_batches(70, 23, False, 2) == 3
    assert [shard_bounds(10, r, 4) for r in range(4)] == [(0, 3), (3, 6), (6, 8), (8, 10)]


def test_environment_and_checks(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    env, device = distributed.init_from_env("cpu")
    assert not env.enabled and env.is_main and device == "cpu" and not distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK=2"):
        distributed.env_from_vars()
    from kdzoo.bench.execution.run import _loaders
    from kdzoo.bench.spec import RunSpec
    from kdzoo.engine import TrainConfig

    spec = RunSpec(dataset="x", student="fmnist_mlp", train=TrainConfig(batch_size=32, device="cpu"))
    with pytest.raises(ConfigError, match="not divisible"):
        _loaders(spec, make_bundle(), torch.device("cpu"), distributed.DistEnv(rank=0, world_size=3))
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model      # one process: no wrapper


def test_torchrun_two_gloo_processes_equal_one_process(tmp_path):
    """KD with a teacher, crop+flip augmentation, momentum SGD, cosine schedule; BN-free student (CPU)."""
    torch.manual_seed(5)
    teacher = kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=(8, 8))
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    args = ["train", "--dataset", ddp_worker.DATASET, "--student", "fmnist_mlp", "--teacher", "fmnist_mlp",
            "--teacher-ckpt", str(tmp_path / "teacher.pt"), "--method", "kd", "--augment", "--epochs", "2",
            "--batch-size", "32", "--lr", "0.1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # --standalone: the rendezvous binds a free port chosen by the OS
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "ddp_worker.py"), *args, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("finished:") == 1          # only rank 0 prints

    ddp_worker.register()
    from conftest import kdzoo_main as main
    assert main([*args, "--out", str(tmp_path / "one")]) == 0

    ddp = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    assert ddp.keys() == one.keys()                    # no "module." prefix
    for k in one:
        torch.testing.assert_close(ddp[k], one[k], atol=1e-5, rtol=0)
    assert not torch.equal(one["fc.weight"], torch.zeros_like(one["fc.weight"]))
    rec = {d: json.loads((tmp_path / d / "result.json").read_text()) for d in ("ddp", "one")}
    assert rec["ddp"]["teacher_queries"] == rec["one"]["teacher_queries"] == 2 * 96   # summed over ranks
    assert rec["ddp"]["status"] == "finished" and rec["ddp"]["epochs"] == 2
    metrics = {d: [json.loads(line) for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
               for d in ("ddp", "one")}
    for a, b in zip(metrics["ddp"], metrics["one"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)   # averaged over ranks
        assert a["test_top1"] == pytest.approx(b["test_top1"], abs=1e-6)


def test_torchrun_trains_a_feature_map_loss(tmp_path):
    """sdd under DDP: the student's (logits, map) forward is what DDP wraps, queries are summed over
    ranks, and the run finishes with one set of weights (no "module." prefix)."""
    torch.manual_seed(5)
    teacher = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4)
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    args = ["train", "--dataset", ddp_worker.DATASET, "--student", "fmnist_cnn_tiny", "--teacher", "fmnist_cnn_tiny",
            "--teacher-ckpt", str(tmp_path / "teacher.pt"), "--method", "sdd", "--access", "features",
            "--augment", "--epochs", "1", "--batch-size", "32", "--lr", "0.1", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "ddp_worker.py"), *args, "--out", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    rec = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert rec["status"] == "finished" and rec["teacher_queries"] == 96   # summed over ranks; maps come with logits
    weights = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    assert weights.keys() == kdzoo.build_model("fmnist_cnn_tiny", num_classes=4).state_dict().keys()
