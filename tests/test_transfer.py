"""Transfer evaluation: linear probe, input conversion, frozen students on held-out Fashion-MNIST classes, CLI."""
import json
import pickle

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.data import make_loader
from kdzoo.data.base import DataBundle, TensorSplit
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.apps.transfer import (InputFormat, adapt_batch, fit_linear_probe, linear_probe_eval, probe_top1,
                                   transfer_evaluate)
from kdzoo.errors import ConfigError

from conftest import needs_fmnist


def test_probe_separates_linearly_separable_features():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 4
    y = torch.arange(400) % 4
    x = centers[y] + torch.randn(400, 16, generator=g)          # well separated clusters
    x[:, 3] = 5.0                                               # a constant feature must not break standardization
    xtr, ytr, xte, yte = x[:300], y[:300], x[300:], y[300:]
    for solver in ("lbfgs", "sgd"):
        probe = fit_linear_probe(xtr, ytr, 4, solver=solver, epochs=20, seed=1)
        assert probe_top1(probe, xtr, ytr) == 100.0 and probe_top1(probe, xte, yte) == 100.0, solver
    # exactly separable by a hyperplane on one coordinate (the others are noise)
    z = torch.randn(200, 5, generator=g)
    lab = (z[:, 0] > 0).long()
    z[:, 0] += torch.where(lab.bool(), 0.5, -0.5)
    assert probe_top1(fit_linear_probe(z, lab, 2, weight_decay=0.0), z, lab) == 100.0
    # seeded and deterministic
    a = fit_linear_probe(xtr, ytr, 4, solver="sgd", epochs=2, seed=3)
    b = fit_linear_probe(xtr, ytr, 4, solver="sgd", epochs=2, seed=3)
    assert torch.equal(a.linear.weight, b.linear.weight)


def test_probe_validation_search_and_errors():
    g = torch.Generator().manual_seed(1)
    y = torch.arange(240) % 3
    x = torch.randn(3, 8, generator=g)[y] * 3 + torch.randn(240, 8, generator=g)
    res = linear_probe_eval((x[:180], y[:180]), (x[180:], y[180:]), 3, val_size=0.25, epochs=20)
    assert res.val_images == 45 and len(res.search) == 5 and res.weight_decay in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    assert res.top1 > 90 and res.val_top1 > 90
    with pytest.raises(ConfigError, match="solver"):
        fit_linear_probe(x, y, 3, solver="adam")
    with pytest.raises(ConfigError, match="labels"):
        fit_linear_probe(x, y + 5, 3)
    with pytest.raises(ConfigError, match="val_size"):
        linear_probe_eval((x, y), (x, y), 3, val_size=240)


def test_input_conversion_rule():
    grey = InputFormat(1, (28, 28), (0.5,), (0.25,))
    rgb = InputFormat(3, (32, 32), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    pix = torch.rand(2, 3, 32, 32)
    x = (pix - torch.tensor(rgb.mean).view(1, 3, 1, 1)) / torch.tensor(rgb.std).view(1, 3, 1, 1)
    out = adapt_batch(x, rgb, InputFormat(1, (32, 32), (0.5,), (0.25,)))
    lum = 0.299 * pix[:, 0] + 0.587 * pix[:, 1] + 0.114 * pix[:, 2]
    torch.testing.assert_close(out[:, 0] * 0.25 + 0.5, lum, atol=1e-5, rtol=0)
    small = adapt_batch(x, rgb, grey)
    assert small.shape == (2, 1, 28, 28)
    g = torch.rand(2, 1, 28, 28)
    up = adapt_batch((g - 0.5) / 0.25, grey, rgb)                 # grey -> RGB: the channel, repeated
    assert up.shape == (2, 3, 32, 32)
    back = up * torch.tensor(rgb.std).view(1, 3, 1, 1) + torch.tensor(rgb.mean).view(1, 3, 1, 1)
    torch.testing.assert_close(back[:, 0], back[:, 2], atol=1e-5, rtol=0)
    assert adapt_batch(x, rgb, rgb) is x                          # same format: untouched
    with pytest.raises(ConfigError, match="channels"):
        adapt_batch(torch.zeros(1, 2, 8, 8), InputFormat(2, (8, 8), (0.5,), (0.5,)), rgb)


def _classes(split: TensorSplit, classes: list[int], n: int) -> TensorSplit:
    keep = torch.isin(split.labels, torch.tensor(classes)).nonzero().flatten()[:n]
    return TensorSplit(split.images[keep], split.labels[keep] - min(classes))


@needs_fmnist
def test_fmnist_student_transfers_to_held_out_classes():
    """Train on classes 0-4, probe on classes 5-9 (never seen by the student)."""
    fm = kdzoo.data.build_dataset("fashion-mnist")
    meta = dict(num_classes=5, in_channels=1, image_size=(28, 28), mean=fm.mean, std=fm.std)
    src = DataBundle("fmnist-0-4", _classes(fm.train, [0, 1, 2, 3, 4], 2000), _classes(fm.test, [0, 1, 2, 3, 4], 500),
                     **meta)
    tgt = DataBundle("fmnist-5-9", _classes(fm.train, [5, 6, 7, 8, 9], 1000),
                     _classes(fm.test, [5, 6, 7, 8, 9], 1000), **meta)
    fmt = InputFormat.of(src)
    torch.manual_seed(0)
    student = kdzoo.build_model("fmnist_cnn_tiny", num_classes=5, in_channels=1)
    random_init = transfer_evaluate(student, fmt, tgt, device="cpu", workers=0)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.1, device="cpu", steps_per_epoch=30)
    Trainer([Member("ce", student, kdzoo.build_loss("ce"))], make_loader(src, "train", 64, train=True),
            {"test": make_loader(src, "test", 500, train=False)}, None, cfg, progress=False).fit()
    before = [p.clone() for p in student.parameters()]
    trained = transfer_evaluate(student, fmt, tgt, device="cpu", workers=0)
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters()))   # frozen
    chance = 20.0
    assert trained.num_features == student.num_features and trained.test_images == 1000
    assert trained.top1 > chance + 40, trained
    assert random_init.top1 > chance + 30, random_init            # random conv features are already useful ...
    assert trained.top1 > random_init.top1 - 10                   # ... and training on other classes does not ruin them
    # features that carry no information give chance-level probes
    for p in student.parameters():
        torch.nn.init.zeros_(p)
    dead = transfer_evaluate(student, fmt, tgt, device="cpu", workers=0)
    majority = 100.0 * float(torch.bincount(tgt.test.labels).max()) / len(tgt.test)
    assert dead.top1 <= majority + 1e-6


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


@needs_fmnist
def test_cli_transfer_fmnist_run_to_rgb_dataset(tmp_path, capsys):
    """A grey 28x28 student probed on a colour 32x32 dataset (CIFAR-10 on-disk format, Fashion-MNIST classes 5-9)."""
    from conftest import kdzoo_main as main

    fm = kdzoo.data.build_dataset("fashion-mnist")
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def rows(split: TensorSplit, n: int, tint: int):
        s = _classes(split, [5, 6, 7, 8, 9], n)
        img = torch.nn.functional.pad(s.images, (2, 2, 2, 2)).repeat(1, 3, 1, 1).numpy().astype(np.int16)
        img[:, tint] = np.clip(img[:, tint] + 40, 0, 255)           # colour it, so luminance conversion matters
        return img.astype(np.uint8).reshape(n, -1), (s.labels + 5).tolist()

    for i in range(1, 6):
        part = TensorSplit(fm.train.images[i * 1000:(i + 1) * 1000], fm.train.labels[i * 1000:(i + 1) * 1000])
        data, labels = rows(part, 100, i % 3)
        _pickle(folder / f"data_batch_{i}", {"labels": labels, "data": data})
    data, labels = rows(fm.test, 400, 0)
    _pickle(folder / "test_batch", {"labels": labels, "data": data})
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    # a run folder as `kdzoo train` leaves it (weights + config); random-init conv features suffice here
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    torch.save(kdzoo.build_model("fmnist_cnn_tiny", num_classes=10, in_channels=1).state_dict(), run / "model.pt")
    (run / "config.json").write_text(json.dumps({"dataset": "fashion-mnist", "student": "fmnist_cnn_tiny"}))
    data_root = str(tmp_path / "data")

    assert main(["transfer", str(run), "--dataset", "cifar10", "--data-root", data_root, "--epochs", "30",
                 "--device", "cpu", "--val-size", "100", "--weight-decay", "1e-4", "1e-2"]) == 0
    assert "linear probe top1=" in capsys.readouterr().out
    rec = json.loads((run / "transfer-cifar10.json").read_text())
    assert rec["source_dataset"] == "fashion-mnist" and rec["target_dataset"] == "cifar10"
    assert rec["train_images"] == 500 and rec["test_images"] == 400 and rec["val_images"] == 100
    assert set(rec["search"]) == {"0.0001", "0.01"} and rec["top1"] > 50, rec

    # a weights file needs the model and the dataset it was trained on; bad input is one line, exit 2
    def fails(*argv: str) -> str:
        assert main(["transfer", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        return err

    assert "--student" in fails(str(run / "model.pt"), "--dataset", "cifar10")
    assert "nowhere" in fails(str(tmp_path / "nowhere"), "--dataset", "cifar10")
    assert "cifar10" in fails(str(run), "--dataset", "cifar1O")
    out = tmp_path / "probe.json"
    assert main(["transfer", str(run / "model.pt"), "--dataset", "cifar10", "--data-root", data_root,
                 "--student", "fmnist_cnn_tiny", "--source-dataset", "fashion-mnist", "--epochs", "20",
                 "--solver", "sgd", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["top1"] > 50
