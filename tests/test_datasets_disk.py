"""Dataset readers on tiny synthetic files written in the real on-disk formats."""
from __future__ import annotations

import pickle
import struct
import zlib

import numpy as np
import pytest
import torch

import kdzoo
from kdzoo.data import base, build_dataset
from kdzoo.data.base import TensorSplit


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("KDZOO_DATA", raising=False)


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


# ---- CIFAR ----

def test_cifar10_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rows = []
    for i in range(1, 6):
        data = _cifar_rows(4, i)
        rows.append(data)
        _pickle(folder / f"data_batch_{i}", {"batch_label": "training batch", "labels": [i % 10] * 4, "data": data})
    test = _cifar_rows(3, 9)
    test[2, 1024 + 5 * 32 + 7] = 201  # green plane, row 5, column 7
    _pickle(folder / "test_batch", {b"labels": [7, 8, 9], b"data": test})  # bytes keys, as Python 2 wrote them
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})

    b = build_dataset("cifar10", data_root=str(tmp_path))
    assert isinstance(b.train, TensorSplit) and b.train.images.shape == (20, 3, 32, 32)
    assert b.train.images.dtype == torch.uint8 and b.test.labels.tolist() == [7, 8, 9]
    assert b.train.labels.tolist() == [i % 10 for i in range(1, 6) for _ in range(4)]
    assert torch.equal(b.train.images[4], torch.from_numpy(rows[1][0].reshape(3, 32, 32)))
    assert b.test.images[2, 1, 5, 7] == 201
    assert b.num_classes == 10 and b.class_names[3] == "c3" and b.image_size == (32, 32)
    assert b.augment.crop_padding == 4 and b.augment.flip

    b = build_dataset("cifar10", data_root=str(tmp_path), val_size=5, seed=1, augment=False)
    assert len(b.train) == 15 and len(b.val) == 5 and not b.augment.active


def test_cifar100_files_and_normalization(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = _cifar_rows(6, 1)
    _pickle(folder / "train", {"fine_labels": [0, 5, 99, 3, 4, 5], "coarse_labels": [0] * 6, "data": train})
    _pickle(folder / "test", {"fine_labels": [42, 1], "coarse_labels": [0, 0], "data": _cifar_rows(2, 2)})
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)], "coarse_label_names": []})
    b = build_dataset("cifar100", data_root=str(tmp_path))
    assert b.train.labels.tolist() == [0, 5, 99, 3, 4, 5] and b.test.labels.tolist() == [42, 1]
    assert torch.equal(b.train.images, torch.from_numpy(train.reshape(6, 3, 32, 32)))
    assert b.num_classes == 100 and tuple(b.mean) == (0.5071, 0.4867, 0.4408)
    assert tuple(b.std) == (0.2675, 0.2565, 0.2761)


def test_cifar_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        _pickle(folder / name, {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [0], "x": print})
    with pytest.raises(kdzoo.DataNotFoundError, match="not a CIFAR python batch"):
        build_dataset("cifar100", data_root=str(tmp_path))


# ---- SVHN (.mat level 5, as MATLAB writes it: compressed elements, doubles stored as uint8) ----

def _element(mtype, payload):
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def _mat_matrix(name, array, mx_class, mi_type, dtype):
    flags = _element(6, struct.pack("<II", mx_class, 0))
    dims = _element(5, np.asarray(array.shape, "<i4").tobytes())
    raw_name = name.encode()
    name_el = (struct.pack("<I", (len(raw_name) << 16) | 1) + raw_name.ljust(4, b"\0")) if len(raw_name) <= 4 \
        else _element(1, raw_name)
    data = _element(mi_type, np.asarray(array, dtype=dtype).tobytes(order="F"))
    return _element(14, flags + dims + name_el + data)


def _write_mat(path, images_hwcn, labels):
    header = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024".ljust(116, b" ")
    header += b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    body = b""
    for var in (_mat_matrix("X", images_hwcn, 9, 2, "<u1"), _mat_matrix("y", labels.reshape(-1, 1), 6, 2, "<u1")):
        packed = zlib.compress(var)
        body += struct.pack("<II", 15, len(packed)) + packed
    body += _mat_matrix("note", np.array([[1.5, 2.5, 3.5]]), 6, 9, "<f8")  # an uncompressed, padded element
    path.write_bytes(header + body)


def test_svhn_mat_files(tmp_path):
    folder = tmp_path / "svhn"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    x_train[3, 9, 2, 4] = 77  # row 3, column 9, blue, image 4
    _write_mat(folder / "train_32x32.mat", x_train, np.array([1, 10, 3, 10, 9], dtype=np.float64))
    _write_mat(folder / "test_32x32.mat", rng.integers(0, 256, (32, 32, 3, 2), dtype=np.uint8), np.array([2.0, 10.0]))
    b = build_dataset("svhn", data_root=str(tmp_path))
    assert b.train.images.shape == (5, 3, 32, 32) and b.train.labels.tolist() == [1, 0, 3, 0, 9]
    assert b.test.labels.tolist() == [2, 0]
    assert b.train.images[4, 2, 3, 9] == 77
    first = np.ascontiguousarray(x_train[:, :, :, 1].transpose(2, 0, 1))
    assert torch.equal(b.train.images[1], torch.from_numpy(first))
    assert b.augment.crop_padding == 4 and not b.augment.flip

    from kdzoo.data._matfile import load_mat
    assert load_mat(folder / "train_32x32.mat")["note"].tolist() == [[1.5, 2.5, 3.5]]


def test_svhn_reads_scipy_written_files(tmp_path):
    sio = pytest.importorskip("scipy.io")
    folder = tmp_path / "svhn"
    folder.mkdir()
    x = np.random.default_rng(1).integers(0, 256, (32, 32, 3, 3), dtype=np.uint8)
    for name in ("train_32x32.mat", "test_32x32.mat"):
        sio.savemat(folder / name, {"X": x, "y": np.array([[10.0], [1.0], [2.0]])}, do_compression=True)
    b = build_dataset("svhn", data_root=str(tmp_path))
    assert b.train.labels.tolist() == [0, 1, 2] and b.train.images[2, 0, 1, 2] == x[1, 2, 0, 2]


# ---- STL-10 ----

def test_stl10_binary(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        planes = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # [image, channel, column, row] on disk
        if split == "train":
            planes[2, 1, 40, 10] = 250  # image 2, green, column 40, row 10
        planes.tofile(folder / f"{split}_X.bin")
        np.array([1, 10, 4][:n], dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    b = build_dataset("stl10", data_root=str(tmp_path))
    assert b.train.images.shape == (3, 3, 96, 96) and b.image_size == (96, 96)
    assert b.train.labels.tolist() == [0, 9, 3] and b.test.labels.tolist() == [0, 9]
    assert b.train.images[2, 1, 10, 40] == 250
    assert b.class_names[9] == "k9"
    (folder / "test_y.bin").write_bytes(b"\x01")
    with pytest.raises(kdzoo.DataNotFoundError, match="test_X.bin"):
        build_dataset("stl10", data_root=str(tmp_path))


# ---- image-folder datasets ----

def _png(path, rgb, size=64, mode="RGB"):
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (size, size), rgb)
    img.putpixel((1, 2), (255, 0, 255))  # column 1, row 2
    (img.convert("L") if mode == "L" else img).save(path, format="PNG")


def test_tiny_imagenet_layouts_and_cache(tmp_path):
    root = tmp_path / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]  # listed unsorted; classes follow sorted ids like ImageFolder
    (root).mkdir()
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tsalamander\nn03\tbullfrog\n")
    for k, wnid in enumerate(wnids):
        for j in range(2):  # PNG bytes under .JPEG names keep pixel values exact
            _png(root / "train" / wnid / "images" / f"{wnid}_{j}.JPEG", (10 * k, 20, 30 + j))
    _png(root / "val" / "images" / "val_0.JPEG", (1, 2, 3))
    _png(root / "val" / "images" / "val_1.JPEG", (90, 90, 90), mode="L")
    (root / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn03\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t1\t5\t5\n")

    b = build_dataset("tiny-imagenet", data_root=str(tmp_path))
    assert b.num_classes == 3 and b.class_names == ["goldfish", "salamander", "bullfrog"]
    assert b.train.images.shape == (6, 3, 64, 64) and b.train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert b.train.images[2, :, 0, 0].tolist() == [0, 20, 30]  # n02 is listed first but is class 1
    assert b.train.images[2, :, 2, 1].tolist() == [255, 0, 255]
    assert b.test.labels.tolist() == [2, 0] and b.test.images[0, :, 5, 5].tolist() == [1, 2, 3]
    assert b.test.images[1, :, 5, 5].tolist() == [90, 90, 90]  # greyscale JPEGs become RGB
    assert len(list(root.glob("kdzoo-cache-*.pt"))) == 2
    again = build_dataset("tiny-imagenet", data_root=str(tmp_path), val_size=2)
    assert len(again.train) == 4 and len(again.val) == 2

    # val/ sorted into class folders (as ImageFolder-based code expects) works too
    (root / "val" / "val_annotations.txt").unlink()
    _png(root / "val" / "n02" / "images" / "a.JPEG", (5, 5, 5))
    b = build_dataset("tiny-imagenet", data_root=str(tmp_path), cache=False)
    assert b.test.labels.tolist() == [1]


def test_imagenet_folders(tmp_path):
    root = tmp_path / "imagenet"
    for wnid, rgb in (("n001", (255, 0, 0)), ("n002", (0, 128, 255))):
        for j in range(2):
            _png(root / "train" / wnid / f"{j}.JPEG", rgb, size=16)
        _png(root / "val" / wnid / "v.JPEG", rgb, size=16)
    b = build_dataset("imagenet", data_root=str(tmp_path), val_size=1)
    assert b.num_classes == 2 and b.class_names == ["n001", "n002"] and b.image_size == (224, 224)
    assert len(b.train) == 3 and len(b.val) == 1 and len(b.test) == 2
    x, y = b.test[1]
    assert x.shape == (3, 224, 224) and y == 1
    expected = (torch.tensor([0, 128, 255]) / 255 - torch.tensor(b.mean)) / torch.tensor(b.std)
    assert torch.allclose(x[:, 112, 112], expected, atol=1e-5)
    xt, _ = b.train[0]
    assert xt.shape == (3, 224, 224)

    for f in (root / "val").rglob("*.JPEG"):
        f.rename(root / "val" / f"{f.parent.name}.JPEG")
    for d in ("n001", "n002"):
        (root / "val" / d).rmdir()
    with pytest.raises(kdzoo.DataNotFoundError, match="val/<wnid>"):
        build_dataset("imagenet", data_root=str(tmp_path))


# ---- missing data ----

@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
                                          ("svhn", "svhn"), ("stl10", "stl10_binary"),
                                          ("tiny-imagenet", "tiny-imagenet-200"), ("imagenet", "imagenet")])
def test_missing_data_is_one_line(name, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(base, "candidate_roots", lambda root: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(kdzoo.DataNotFoundError) as err:
        build_dataset(name)
    msg = str(err.value)
    assert "\n" not in msg and folder in msg and str(tmp_path / "a") in msg and "--data-root" in msg
