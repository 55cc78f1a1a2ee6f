"""The shipped recipes validate; the paper recipe dry-runs without data and stops with one line when run."""
from __future__ import annotations

from pathlib import Path

import pytest

from kdzoo.bench.recipe.parse import load_recipe

from conftest import kdzoo_main as main

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """Every folder kdzoo searches for datasets is empty; no teacher folder either."""
    import kdzoo.data.base as base
    monkeypatch.setattr(base, "candidate_roots", lambda data_root: [tmp_path / "empty"])
    monkeypatch.delenv("KDZOO_DATA", raising=False)
    monkeypatch.setenv("KDZOO_TEACHERS", str(tmp_path / "no-teachers"))


def test_every_shipped_recipe_validates():
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    assert {"quickstart", "fashion_mnist", "cifar100_paper", "imagenet_paper", "b2kd_fashion_mnist",
            "b2kd_fashion_mnist_shift"} <= set(names)
    for name in names:
        assert load_recipe(RECIPES / f"{name}.yaml").name == name
    assert load_recipe(RECIPES / "b2kd_fashion_mnist_shift.yaml").student_data.student_shift == "rotate:25+noise:20"


def test_quickstart_is_the_documented_sweep():
    r = load_recipe(RECIPES / "quickstart.yaml")
    assert r.dataset == "fashion-mnist" and len(r.seeds) == 3     # >= 3 seeds (issue 13)
    assert [m.label for m in r.methods] == ["ce", "kd", "dkd", "rld", "mcld"]
    assert [(p.teacher, p.student) for p in r.pairs] == [("fmnist_teacher", "fmnist_cnn_tiny")]


def test_cifar_paper_dry_run_lists_runs(no_data, capsys, tmp_path):
    assert main(["bench", str(RECIPES / "cifar100_paper.yaml"), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    raw = capsys.readouterr().out
    assert max(len(line) for line in raw.splitlines()) <= 80           # a pipe: 80 columns, one table per pair
    out = " ".join(raw.split())                                         # lines wrap between words
    assert "resnet32x4 → resnet8x4" in out and "vgg13 → vgg8" in out
    methods = [m.label for m in load_recipe(RECIPES / "cifar100_paper.yaml").methods]
    rows = 6 * len(methods) * 3                                 # 6 pairs x methods x 3 seeds
    assert f"{rows} leaderboard rows, {rows - 3} distinct runs" in out   # resnet20 alone is shared by two pairs
    assert f"{rows - 3} pending" in out and "training images" in out
    for name in ("ce", "kd", "dkd", "rld", "mcld", "dist", "kd+ls", "dkd+ls", "wsld", "nkd", "ttm", "wttm", "abkd",
                 "ctkd", "ctkd+ls", "mlkd", "mlkd+ls", "crld", "sdd"):
        assert name in methods and f" {name} " in out          # every method of the zoo is planned
    assert not (tmp_path / "out").exists()                      # a dry run writes nothing


def test_cifar_paper_without_data_stops_with_one_sentence(no_data, capsys, tmp_path):
    assert main(["bench", str(RECIPES / "cifar100_paper.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdzoo: error: cifar-100-python not found under")
    assert "--data-root" in err
    assert not (tmp_path / "out" / "runs").exists()
