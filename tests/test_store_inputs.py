"""Hostile input around the run store, each refused or contained in one line: deeply nested or huge
YAML, labels that would break the tables, and plugins that fail to load or call ``sys.exit``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest

import kdzoo
from kdzoo.bench.recipe.parse import parse_recipe
from kdzoo.bench.plan import expand
from kdzoo.errors import ConfigError, PluginWarning
from kdzoo.registry import LOSSES

from conftest import kdzoo_main as main

REPO = Path(__file__).resolve().parents[1]

RECIPE = """\
name: inputs
dataset: fashion-mnist
teachers:
  fmnist_teacher: {{train: {{epochs: 1}}}}
pairs:
  - {{teacher: fmnist_teacher, student: fmnist_cnn_tiny}}
methods:
  - ce
  - {method}
seeds: [0]
"""


def _one_line_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("kdzoo: error: ")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------ YAML limits
@pytest.mark.parametrize("shape", ["flow", "block"])
def test_deeply_nested_yaml_is_one_line_not_a_recursion_error(tmp_path, capsys, shape):
    if shape == "flow":
        text = "name: deep\ndataset: " + "[" * 500 + "]" * 500 + "\n"
    else:
        text = "name: deep\ndataset:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 501))
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    line = _one_line_error(capsys, ["bench", str(path), "--dry-run"])
    assert f"{path}:" in line and "nested more than 50 levels deep" in line


def test_a_huge_recipe_is_refused_before_it_is_parsed(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text(RECIPE.format(method="kd") + ("# padding\n" * 220_000))
    line = _one_line_error(capsys, ["bench", str(path), "--dry-run"])
    assert line.endswith(f"{path}: 2.2 MB is more than a recipe may hold (1 MB)")
    with pytest.raises(ConfigError, match="more than a recipe may hold"):
        parse_recipe("a: 1\n" + "#" * (2 << 20), source="x.yaml")


# ----------------------------------------------------------------------------- labels
@pytest.mark.parametrize("label,bad", [("'kd; dkd'", "';'"), ("'kd|x'", "'|'"), ('"kd\\nx"', "'\\n'"),
                                       ("'[red]kd'", "'['"), ("'kd x'", "' '"), ("'`kd`'", "'`'")])
def test_labels_that_would_break_a_table_are_refused(label, bad):
    text = RECIPE.format(method=f"{{name: kd, label: {label}}}")
    with pytest.raises(ConfigError) as caught:
        parse_recipe(text, source="r.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("r.yaml:9: methods[1].label: label ")
    assert f"may hold only letters, digits and _ . + - = : / @ ( ) (not {bad})" in message, message


def test_labels_of_the_shipped_kind_are_accepted():
    for label in ("kd+dot", "kd-T2", "sdd-dkd", "dist-T1", "mcld_l2", "../x", "/abs/path.v2", "topk:5", "kd(T=2)"):
        recipe = parse_recipe(RECIPE.format(method=f"{{name: kd, label: '{label}'}}"), source="r.yaml")
        assert recipe.methods[1].label == label


def test_a_teacher_name_that_would_break_a_table_is_refused():
    text = RECIPE.replace("  fmnist_teacher: {{train", "  'a|b': {{model: fmnist_teacher, train").replace(
        "{{teacher: fmnist_teacher,", "{{teacher: 'a|b',")
    with pytest.raises(ConfigError, match=r"r.yaml:4: teachers.a\|b: teacher name 'a\|b' may hold only"):
        parse_recipe(text.format(method="kd"), source="r.yaml")


def test_a_hand_edited_plan_with_a_bad_label_is_refused_by_the_leaderboard(tmp_path, capsys):
    recipe = parse_recipe(RECIPE.format(method="kd"), source="r.yaml")
    plan = expand(recipe, tmp_path).to_dict()
    plan["entries"][-1]["label"] = "kd; ce"        # would read as two methods in 'tied with'
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    line = _one_line_error(capsys, ["leaderboard", str(tmp_path)])
    assert "plan.json is not a kdzoo plan (ValueError: label 'kd; ce' may hold only" in line


# ---------------------------------------------------------------------------- plugins
class _EntryPoint:
    """A stand-in for an installed distribution's entry point (kdzoo.losses group)."""

    def __init__(self, name: str, value: str, error: BaseException) -> None:
        self.name, self.value, self.error = name, value, error

    def load(self):
        raise self.error


@pytest.fixture
def broken_plugin(monkeypatch):
    """An installed loss plugin whose import fails; the loss registry looks for plugins afresh."""
    def install(error: BaseException, name: str = "brokenloss") -> None:
        real = metadata.entry_points
        ep = _EntryPoint(name, "kdzoo_test_broken_plugin:register", error)
        monkeypatch.setattr(metadata, "entry_points",
                            lambda **kw: [ep] if kw.get("group") == "kdzoo.losses" else real(**kw))
        monkeypatch.setattr(LOSSES, "_plugins_loaded", False)
        monkeypatch.setattr(LOSSES, "broken", {})
    return install


@pytest.mark.parametrize("error,why", [(ModuleNotFoundError("No module named 'kdzoo_test_broken_plugin'"),
                                        "(ModuleNotFoundError: No module named 'kdzoo_test_broken_plugin')"),
                                       (SystemExit(3), "(it called sys.exit(3))")])
def test_a_broken_entry_point_is_reported_once_and_skipped(broken_plugin, capsys, error, why):
    broken_plugin(error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["list", "losses"]) == 0                 # the CLI works on without it
        assert "kd" in capsys.readouterr().out
        kdzoo.build_loss("kd")                               # and so does every other name
    (warning,) = [w for w in caught if issubclass(w.category, PluginWarning)]
    assert str(warning.message) == (f"plugin entry point 'brokenloss' (kdzoo_test_broken_plugin:register) of group "
                                    f"'kdzoo.losses' failed to import {why}; skipped")
    with pytest.raises(ConfigError) as caught_error:         # a name only it could give: refused, naming it
        kdzoo.build_loss("brokenloss")
    assert str(caught_error.value).endswith(f"; 'brokenloss' would come from plugin entry point 'brokenloss' "
                                            f"(kdzoo_test_broken_plugin:register) of group 'kdzoo.losses' "
                                            f"failed to import {why}")


def test_a_recipe_runs_without_the_broken_plugin_unless_it_names_it(broken_plugin, tmp_path, capsys):
    broken_plugin(ImportError("cannot import name 'x'"), name="otherplugin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginWarning)
        assert parse_recipe(RECIPE.format(method="kd"), source="r.yaml").methods[1].label == "kd"
        with pytest.raises(ConfigError) as caught:
            parse_recipe(RECIPE.format(method="brokenloss"), source="r.yaml")
    message = str(caught.value)
    assert message.startswith("r.yaml:9: methods[1]: unknown loss 'brokenloss'") and "\n" not in message
    assert message.endswith("; plugin entry point 'otherplugin' (kdzoo_test_broken_plugin:register) of group "
                            "'kdzoo.losses' failed to import (ImportError: cannot import name 'x'), which may "
                            "provide it")


def test_a_recipe_plugin_calling_sys_exit_is_one_line(tmp_path, capsys):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nprint('plugin says bye')\nsys.exit(4)\n")
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(method="kd").replace("seeds: [0]", "seeds: [0]\nplugins: [exits.py]"))
    line = _one_line_error(capsys, ["bench", str(path), "--dry-run"])
    assert line == f"kdzoo: error: {path}:11: plugins[0]: cannot import plugin 'exits.py': it called sys.exit(4)"


def test_an_installed_plugin_that_exits_leaves_the_cli_working(tmp_path):
    """End to end, through a real installed distribution (a .dist-info folder on the path)."""
    dist = tmp_path / "kdzoo_test_exit_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kdzoo-test-exit-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[kdzoo.losses]\nexitloss = kdzoo_test_exit_plugin\n")
    (tmp_path / "kdzoo_test_exit_plugin.py").write_text("import sys\nsys.exit('plugin gives up')\n")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    proc = subprocess.run([sys.executable, "-m", "kdzoo", "list", "losses"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    rows = [line.split()[0] for line in proc.stdout.splitlines() if line[:1].strip()]   # a row's first word
    assert proc.returncode == 0 and {"ce", "kd", "dkd"} <= set(rows) and "exitloss" not in rows, proc.stderr
    assert proc.stderr.splitlines() == [
        "kdzoo: PluginWarning: plugin entry point 'exitloss' (kdzoo_test_exit_plugin) of group 'kdzoo.losses' "
        "failed to import (it called sys.exit('plugin gives up')); skipped"]
