"""Corrupt or truncated run state is detected and the run redone from the last good state, with a warning."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

import kdzoo
from kdzoo.data import make_loader
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.engine.recovery import RecoveryWarning, prev_path, save_checkpoint_keep_previous

from conftest import make_bundle

EPOCHS = 3


class StopAt(kdzoo.DistillLoss):
    """Cross-entropy that raises KeyboardInterrupt on its first step of epoch ``stop``."""
    requires = "none"

    def __init__(self, stop: int | None = None):
        super().__init__()
        self.stop = stop

    def forward(self, s, t, y, *, epoch=1, **batch):
        if self.stop is not None and epoch == self.stop:
            raise KeyboardInterrupt
        return {"ce": torch.nn.functional.cross_entropy(s, y)}


def _fit(run_dir, stop=None, bundle=None):
    bundle = bundle or make_bundle(n_train=48, n_test=24)
    torch.manual_seed(0)
    model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=bundle.num_classes, in_channels=1)
    cfg = TrainConfig(epochs=EPOCHS, batch_size=16, lr=0.1, device="cpu")
    trainer = Trainer([Member("ce", model, StopAt(stop), run_dir=run_dir)],
                      make_loader(bundle, "train", 16, train=True, seed=0),
                      {"test": make_loader(bundle, "test", 64, train=False)}, None, cfg, progress=False)
    return trainer.fit()[0], model


def _weights(model):
    return [v.clone() for v in model.state_dict().values()]


def _untimed(text: str) -> list[dict]:
    """metrics.jsonl records without wall-clock fields."""
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in text.splitlines()]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and a run folder interrupted after epoch 2 (checkpoint + prev from epoch 1)."""
    root = tmp_path_factory.mktemp("ref")
    result, model = _fit(root / "full")
    with pytest.raises(KeyboardInterrupt):
        _fit(root / "stopped", stop=3)
    metrics = (root / "full" / "metrics.jsonl").read_text()
    return {"result": result, "weights": _weights(model), "stopped": root / "stopped", "metrics": metrics}


@pytest.fixture
def stopped(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference["stopped"], run)
    return run


def _resume_and_check(run, reference, expect_warning: str | None):
    if expect_warning is None:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecoveryWarning)
            result, model = _fit(run)
    else:
        with pytest.warns(RecoveryWarning, match=expect_warning):
            result, model = _fit(run)
    assert result.status == "finished" and result.epochs == EPOCHS
    assert _same(_weights(model), reference["weights"]), "resumed run differs from the uninterrupted one"
    assert _untimed((run / "metrics.jsonl").read_text()) == _untimed(reference["metrics"])
    return result


def test_layout_after_interrupt(stopped):
    ckpt = torch.load(stopped / "checkpoint.pt", weights_only=True)
    prev = torch.load(stopped / "checkpoint.prev.pt", weights_only=True)
    assert (ckpt["epoch"], prev["epoch"]) == (2, 1)
    assert (stopped / "checkpoint.pt.sha256").is_file() and (stopped / "checkpoint.prev.pt.sha256").is_file()


def test_clean_resume_gives_no_warning(stopped, reference):
    _resume_and_check(stopped, reference, None)


def test_truncated_checkpoint_falls_back_to_previous(stopped, reference):
    data = (stopped / "checkpoint.pt").read_bytes()
    (stopped / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    _resume_and_check(stopped, reference, r"checkpoint\.pt does not match its checksum.*resuming from "
                                          r"checkpoint\.prev\.pt \(epoch 1\)")


def test_flipped_byte_in_checkpoint_is_caught_by_checksum(stopped, reference):
    data = bytearray((stopped / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (stopped / "checkpoint.pt").write_bytes(bytes(data))
    _resume_and_check(stopped, reference, "truncated or corrupt")


def test_garbage_checkpoint_without_checksum_is_caught_by_parsing(stopped, reference):
    (stopped / "checkpoint.pt").write_bytes(b"\x00garbage" * 10)
    (stopped / "checkpoint.pt.sha256").unlink()
    _resume_and_check(stopped, reference, r"checkpoint\.pt cannot be read")


def test_missing_checkpoint_with_previous_left(stopped, reference):
    (stopped / "checkpoint.pt").unlink()
    _resume_and_check(stopped, reference, r"checkpoint\.pt is missing; resuming from checkpoint\.prev\.pt")


def test_empty_checkpoint(stopped, reference):
    (stopped / "checkpoint.pt").write_bytes(b"")
    _resume_and_check(stopped, reference, r"empty \(0 bytes\)")


def test_killed_between_checkpoint_and_its_checksum(stopped, reference):
    """New checkpoint written, old sidecar still there: the mismatch sends the run back to the previous one."""
    (stopped / "checkpoint.pt.sha256").write_text("0" * 64 + "\n")
    _resume_and_check(stopped, reference, "resuming from checkpoint.prev.pt")


def test_both_checkpoints_bad_restarts_from_scratch(stopped, reference):
    for p in (stopped / "checkpoint.pt", stopped / "checkpoint.prev.pt"):
        p.write_bytes(p.read_bytes()[:100])
    _resume_and_check(stopped, reference, "no good checkpoint left, training restarts from scratch")


def test_not_a_training_checkpoint(stopped, reference):
    """A readable tensors-only file that is not a training state (e.g. model.pt copied over it)."""
    from kdzoo.engine.checkpoint import save_checkpoint
    save_checkpoint({"weight": torch.zeros(2)}, stopped / "checkpoint.pt")
    _resume_and_check(stopped, reference, "is not a kdzoo training checkpoint")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete", "extra"])
def test_metrics_jsonl_is_rewritten_from_checkpoint(reference, tmp_path, damage):
    """Even for a finished run (no more epochs to train) metrics.jsonl is repaired on the next resume."""
    run = tmp_path / "run"
    _fit(run)
    path = run / "metrics.jsonl"
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
        match = "not JSON"
    elif damage == "garbage":
        path.write_bytes(b"\xff\xfe{{{\n")
        match = "not JSON"
    elif damage == "delete":
        path.unlink()
        match = "is missing"
    else:
        path.write_text(text + json.dumps({"epoch": 99}) + "\n")
        match = "has 4 epochs but the checkpoint has 3"
    with pytest.warns(RecoveryWarning, match=match):
        result, _ = _fit(run)
    assert result.status == "finished"
    assert _untimed(path.read_text()) == _untimed(reference["metrics"])


def test_prev_is_never_replaced_by_a_corrupt_current(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint_keep_previous({"epoch": 1, "model": {}}, path)
    save_checkpoint_keep_previous({"epoch": 2, "model": {}}, path)
    assert torch.load(prev_path(path), weights_only=True)["epoch"] == 1
    path.write_bytes(path.read_bytes()[:50])                     # current gets corrupted
    save_checkpoint_keep_previous({"epoch": 3, "model": {}}, path)
    assert torch.load(prev_path(path), weights_only=True)["epoch"] == 1   # good prev kept
    assert torch.load(path, weights_only=True)["epoch"] == 3
