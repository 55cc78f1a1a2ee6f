"""Fashion-MNIST loading, search order, seeded splits and batch augmentation."""
import gzip
import struct

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.data import build_dataset
from kdzoo.data.base import Augment, TensorSplit
from kdzoo.data.fashion_mnist import read_idx
from kdzoo.data.loader import TensorLoader


def write_idx(path, array: np.ndarray):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_fmnist(folder, n_train=20, n_test=10):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n_train, 28, 28))
    write_idx(folder / "train-images-idx3-ubyte.gz", imgs)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)
    return imgs


def test_real_fashion_mnist_shapes_and_class_balance():
    b = build_dataset("fashion-mnist")
    assert b.train.images.shape == (60000, 1, 28, 28) and b.test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(b.train.labels).tolist() == [6000] * 10  # the dataset is balanced
    assert torch.bincount(b.test.labels).tolist() == [1000] * 10
    assert b.num_classes == 10 and b.in_channels == 1


def test_data_root_is_searched_first_and_reads_exact_pixels(tmp_path):
    imgs = fake_fmnist(tmp_path / "fashion-mnist")
    b = build_dataset("fashion-mnist", data_root=str(tmp_path))
    assert len(b.train) == 20 and len(b.test) == 10
    assert torch.equal(b.train.images[:, 0], torch.from_numpy(imgs.astype(np.uint8)))
    assert b.train.labels.tolist() == [i % 10 for i in range(20)]


def test_kdzoo_data_env_is_searched(tmp_path, monkeypatch):
    fake_fmnist(tmp_path / "fashion-mnist", n_train=30)
    monkeypatch.setenv("KDZOO_DATA", str(tmp_path))
    assert len(build_dataset("fashion-mnist").train) == 30


def test_missing_data_names_places(tmp_path, monkeypatch):
    import kdzoo.data.base as base
    monkeypatch.setattr(base, "candidate_roots", lambda root: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(kdzoo.DataNotFoundError) as err:
        build_dataset("fashion-mnist")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "a") in msg and str(tmp_path / "b") in msg and "KDZOO_DATA" in msg


def test_truncated_idx_is_reported(tmp_path):
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10) + bytes(4))
    with pytest.raises(kdzoo.DataNotFoundError, match="truncated"):
        read_idx(path)


def test_val_split_is_seeded_and_disjoint():
    a = build_dataset("fashion-mnist", val_size=0.1, seed=3)
    b = build_dataset("fashion-mnist", val_size=0.1, seed=3)
    c = build_dataset("fashion-mnist", val_size=0.1, seed=4)
    assert len(a.val) == 6000 and len(a.train) == 54000
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)


def test_loader_epochs_are_reproducible_and_cover_data():
    split = TensorSplit(torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 4, 4).contiguous(),
                        torch.arange(40) % 4)
    mk = lambda: TensorLoader(split, 16, mean=(0.0,), std=(1 / 255,), shuffle=True, seed=7)
    l1, l2 = mk(), mk()
    l1.set_epoch(2), l2.set_epoch(2)
    idx1 = torch.cat([i for _, _, i in l1])
    assert sorted(idx1.tolist()) == list(range(40))
    assert torch.equal(idx1, torch.cat([i for _, _, i in l2]))
    l2.set_epoch(3)
    assert not torch.equal(idx1, torch.cat([i for _, _, i in l2]))
    x, y, i = next(iter(l1))
    assert torch.equal(x[:, 0, 0, 0], i.float())  # normalization (x - 0) / (1/255) / 255 recovers the pixel


def test_crop_and_flip_move_pixels_as_expected():
    img = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    split = TensorSplit(img, torch.zeros(64, dtype=torch.long))
    loader = TensorLoader(split, 64, mean=(0.0,), std=(1 / 255,), augment=Augment(crop_padding=1, flip=True), seed=1)
    x, _, _ = next(iter(loader))
    ref = img[0, 0].float()
    padded = torch.nn.functional.pad(ref, (1, 1, 1, 1))
    crops = [padded[r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
    allowed = crops + [c.flip(1) for c in crops]
    for sample in x[:, 0]:
        assert any(torch.equal(sample, a) for a in allowed)
    distinct = {tuple(s.flatten().tolist()) for s in x[:, 0]}
    assert len(distinct) > 5  # augmentation actually varies
