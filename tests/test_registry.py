"""Registries: suggestions, registration rules, entry-point plugins."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kdzoo
from kdzoo.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def test_unknown_loss_suggests_close_match():
    with pytest.raises(kdzoo.ConfigError, match="unknown loss 'kd2'; did you mean 'kd'\\?"):
        kdzoo.build_loss("kd2")


def test_unknown_hyperparameter_suggests_close_match():
    with pytest.raises(kdzoo.ConfigError, match="no hyperparameter 'temprature'; did you mean 'temperature'"):
        kdzoo.build_loss("kd", temprature=2.0)


def test_unknown_model_and_dataset_suggest():
    with pytest.raises(kdzoo.ConfigError, match="did you mean 'fmnist_mlp'"):
        kdzoo.build_model("fmnist_mpl", num_classes=10)
    from kdzoo.data import build_dataset
    with pytest.raises(kdzoo.ConfigError, match="did you mean 'fashion-mnist'"):
        build_dataset("fashion_mnist")


def test_loss_info_lists_paper_defaults_and_access():
    info = kdzoo.loss_info("kd")
    assert info["arxiv"] == "1503.02531"
    assert info["defaults"] == {"temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9, "standardize": False}
    assert info["requires"] == "label"
    assert kdzoo.loss_info("kd+ls")["defaults"]["kd_weight"] == 9.0
    assert {"ce", "kd", "kd+ls"} <= set(kdzoo.list_losses())
    assert kdzoo.list_losses() == sorted(kdzoo.list_losses())


def test_register_decorator_and_duplicate_names():
    reg = Registry("thing")

    @reg.register("a")
    def make_a(x: int = 1):
        return ("a", x)

    assert reg.build("a", x=3) == ("a", 3)
    with pytest.raises(kdzoo.ConfigError, match="already registered"):
        reg.register("a", lambda: None)
    reg.register("a", lambda: "new", overwrite=True)
    assert reg.build("a") == "new"


def test_user_loss_registered_with_decorator_builds():
    @kdzoo.register_loss("test_half_kd", overwrite=True)
    class HalfKD(kdzoo.DistillLoss):
        requires = "probs"

        def __init__(self, scale: float = 0.5):
            super().__init__()
            self.scale = scale

        def forward(self, s, t, y, *, epoch=1, **batch):
            return {"ce": self.scale * (s - t).pow(2).mean()}

    assert "test_half_kd" in kdzoo.list_losses()
    assert kdzoo.build_loss("test_half_kd", scale=2.0).scale == 2.0


def test_entry_point_plugin_is_discovered(tmp_path):
    """Install examples/plugin into a target folder; a fresh interpreter finds its loss."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(REPO / "examples" / "plugin")],
                         capture_output=True, text=True, timeout=240)
    assert pip.returncode == 0, pip.stderr[-2000:]
    code = ("import kdzoo, torch; print('jsd' in kdzoo.list_losses()); "
            "l = kdzoo.build_loss('jsd', temperature=1.0, ce_weight=0.0); "
            "print(round(float(l(torch.zeros(1, 2), torch.tensor([[0.0, 0.0]]), torch.tensor([0]))['jsd']), 6)); "
            "print(kdzoo.loss_info('jsd')['source']); print(','.join(kdzoo.loss_info('jsd')['space']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(REPO)])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    found, value, source, space = out.stdout.split()
    assert found == "True"
    assert float(value) == 0.0  # identical distributions: JSD is zero
    assert source == "kdzoo_plugin_example.jsd"
    assert space == "temperature,jsd_weight"  # its declared search space passes the check


def test_a_losss_access_and_needs_are_read_by_one_helper_each():
    """``requires``/``needs`` have class defaults that an instance may override: every reader goes through
    ``losses.base.requirements`` / ``needs_of`` (which also supply the default for a loss declaring none)."""
    import re
    from kdzoo.losses.base import DistillLoss, needs_of, requirements

    class Bare(torch.nn.Module):   # a plugin that declares nothing
        pass
    assert requirements(Bare()) == "logits" and needs_of(Bare()) == frozenset()
    mcld = kdzoo.build_loss("mcld", normalize="l2")
    assert requirements(mcld) == "logits" and requirements(type(mcld)) == type(mcld).requires
    assert requirements(DistillLoss) == "logits"
    pattern = re.compile(r"getattr\([^)]*[\"'](requires|needs)[\"']")
    readers = [str(p.relative_to(REPO)) for p in (REPO / "kdzoo").rglob("*.py") if pattern.search(p.read_text())]
    assert readers == ["kdzoo/losses/base.py"]


def test_lookups_find_the_built_ins_without_any_import_first():
    """A registry imports its built-in package on first lookup: nothing has to call list_*() for its side effect."""
    code = ("import sys; from kdzoo.registry import DATASETS, LOSSES, MODELS; "
            "print('fmnist_mlp' in MODELS, 'fashion-mnist' in DATASETS, 'kd' in LOSSES.names(), "
            "MODELS.entry('resnet20').name, 'kdzoo.bench' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "True", "resnet20", "False"]


def test_no_list_call_is_made_only_for_its_side_effect():
    import ast
    calls = []
    for path in (REPO / "kdzoo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                name = ast.unparse(node.value.func)
                if name.split(".")[-1] in ("list_models", "list_datasets", "list_losses", "names"):
                    calls.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}()")
    assert calls == []
