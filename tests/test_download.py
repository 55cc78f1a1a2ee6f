"""``--download`` offline: one line, exit 2, nothing left behind; the missing-data sentence names every remedy.

The network is never touched: torchvision's mirror list is replaced (``$KDZOO_FASHION_MNIST_MIRRORS``)
by a local port nothing listens on, so the download fails at once, as it would offline.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conftest import kdzoo_main as main


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No dataset anywhere kdzoo looks, an unreachable mirror, and a private temporary folder to check."""
    import kdzoo.data.base as base
    monkeypatch.setattr(base, "candidate_roots", lambda data_root: [tmp_path / "empty"])
    monkeypatch.setenv("KDZOO_FASHION_MNIST_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.delenv("KDZOO_DATA", raising=False)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("command", [
    ["train", "--student", "fmnist_mlp", "--epochs", "1"],
    ["bench", str(REPO / "recipes" / "quickstart.yaml"), "--out", "out"],
])
def test_download_offline_is_one_line_exit_2_and_leaves_nothing(capsys, offline, command):
    before = sorted(p.name for p in offline.iterdir())
    rc = main([*command, "--download", "--data-root", "data"])
    out, err = capsys.readouterr()
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("kdzoo: error: could not download Fashion-MNIST from http://127.0.0.1:9/")
    assert "apt-get install dataset-fashion-mnist" in line and "--data-root" in line
    assert "Traceback" not in err + out
    assert sorted(p.name for p in offline.iterdir()) == before          # no data/, runs/ or out/ folder
    # the download's scratch folder is gone (other libraries may keep caches of their own there, e.g. torch's
    # inductor folder when this is the first test of the process)
    assert not list((offline / "tmp").glob("kdzoo-download-*"))


def test_missing_data_sentence_names_download_and_the_debian_package(capsys, offline):
    rc = main(["bench", str(REPO / "recipes" / "quickstart.yaml"), "--out", "out"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "fashion-mnist not found under" in line
    assert "--download" in line and "apt-get install dataset-fashion-mnist" in line


def test_tests_find_data_where_the_cli_does(monkeypatch, tmp_path):
    """conftest's Fashion-MNIST lookup is the CLI's: $KDZOO_DATA, /usr/share/datasets, ..."""
    import conftest
    import kdzoo.data.base as base
    from kdzoo.data.fashion_mnist import FILES

    real = conftest.FMNIST
    if real is None:
        pytest.skip("Fashion-MNIST files not present")
    (tmp_path / "mine" / "fashion-mnist").mkdir(parents=True)
    for name in FILES.values():
        (tmp_path / "mine" / "fashion-mnist" / name).symlink_to(real / name)
    monkeypatch.setenv("KDZOO_DATA", str(tmp_path / "mine"))
    assert conftest._find_fmnist() == tmp_path / "mine" / "fashion-mnist"
    assert base.candidate_roots(None)[0] == tmp_path / "mine"
    assert Path("/usr/share/datasets") in base.candidate_roots(None)
    monkeypatch.setattr(base, "candidate_roots", lambda data_root: [tmp_path / "nothing"])
    assert conftest._find_fmnist() is None
