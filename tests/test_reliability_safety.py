"""Safety: loading files never runs code (source scan), recipes run no code but their plugins, outputs stay inside OUT."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kdzoo"
SOURCES = sorted(PACKAGE.rglob("*.py"))

SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def _dotted(node: ast.AST) -> str:
    """'torch.load' for torch.load, 'torch.serialization.load', 'load' for a bare name, '' otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _safe_loader_classes(tree: ast.Module) -> set[str]:
    """Classes in the module that derive from a yaml safe loader."""
    safe = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if _dotted(base).split(".")[-1] in SAFE_YAML_LOADERS | safe:
                    safe.add(node.name)
    return safe


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every call that could execute code while reading data, as 'file:line: why'."""
    tree = ast.parse(source, filename)
    safe_loaders = _safe_loader_classes(tree)
    torch_load_names = {"torch.load", "torch.serialization.load"}
    for node in ast.walk(tree):  # `from torch import load` / `from torch.serialization import load as x`
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            torch_load_names |= {a.asname or a.name for a in node.names if a.name == "load"}
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        if name in torch_load_names:
            wo = _kw(node, "weights_only")
            if not (isinstance(wo, ast.Constant) and wo.value is True):
                problems.append(f"{where}: {name}(...) without weights_only=True")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).split(".")[-1] not in SAFE_YAML_LOADERS | safe_loaders:
                problems.append(f"{where}: {name}(...) without a safe Loader")
        elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"):
            problems.append(f"{where}: {name}(...)")
        elif name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "dill.load",
                      "marshal.load", "marshal.loads", "shelve.open"):
            problems.append(f"{where}: {name}(...) unpickles arbitrary objects")
        elif name in ("eval", "exec"):
            problems.append(f"{where}: {name}(...)")
        elif name.endswith("np.load") or name.endswith("numpy.load"):
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                problems.append(f"{where}: {name}(..., allow_pickle=...)")
    return problems


def test_scanner_catches_what_it_should():
    bad = """
import torch, yaml, pickle
from torch import load as tl
torch.load("x")
torch.load("x", weights_only=False)
tl("x")
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
pickle.loads(b"")
eval("1")
"""
    assert len(unsafe_calls(bad)) == 8
    good = """
import torch, yaml, pickle
class L(yaml.SafeLoader): pass
torch.load("x", map_location="cpu", weights_only=True)
yaml.safe_load(text)
yaml.load(text, Loader=L)
yaml.load(text, Loader=yaml.CSafeLoader)
class U(pickle.Unpickler):
    def find_class(self, m, n): raise pickle.UnpicklingError
U(f).load()
"""
    assert unsafe_calls(good) == []


def test_package_never_loads_files_unsafely():
    assert SOURCES, PACKAGE
    problems = [p for f in SOURCES for p in unsafe_calls(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert problems == [], "\n".join(problems)


def test_restricted_unpicklers_refuse_globals():
    """Where kdzoo subclasses pickle.Unpickler (CIFAR batches), find_class must refuse arbitrary globals."""
    import importlib
    import pickle

    found = 0
    for f in SOURCES:
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(_dotted(b).endswith("Unpickler") for b in node.bases):
                found += 1
                assert any(isinstance(n, ast.FunctionDef) and n.name == "find_class" for n in node.body), \
                    f"{f}: {node.name} does not override find_class"
                module = importlib.import_module(
                    ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts))
                cls = getattr(module, node.name)
                payload = pickle.dumps(print)  # a reference to a builtin function: must be refused
                import io
                with pytest.raises(pickle.UnpicklingError):
                    cls(io.BytesIO(payload)).load()
    assert found >= 1


# ------------------------------------------------------------------ outputs stay inside OUT
def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_hostile_labels_and_tags_cannot_write_outside_out(tmp_path):
    """Labels and loss arguments are data: they name nothing on disk, whatever they contain."""
    from kdzoo.bench.runner import run_bench
    from reliability_harness import leaderboard, write_recipe

    absolute = tmp_path / "absolute-escape"
    recipe = write_recipe(tmp_path / "recipe", seeds=(0,), name="relpaths", methods=[
        "{name: reltest_count, label: ../../../dotdot-escape, args: {tag: ../../tag-escape}}",
        f"{{name: reltest_count, label: '{absolute}', args: {{tag: '{absolute}-tag'}}}}",
    ])
    recipe.write_text(recipe.read_text().replace("train: {epochs: 3,", "train: {epochs: 1,"))
    out = tmp_path / "a" / "b" / "out"
    before = _tree(tmp_path)
    run_bench(recipe, out, device="cpu", progress=False)
    created = _tree(tmp_path) - before
    outside = sorted(p for p in created if not (tmp_path / p).is_relative_to(out) and tmp_path / p not in out.parents)
    assert outside == [], outside
    assert not absolute.exists() and not list(tmp_path.rglob("*escape*"))
    labels = {r["label"] for r in leaderboard(out)}
    assert {"../../../dotdot-escape", str(absolute)} <= labels
    for run in (out / "runs").iterdir():
        assert len(run.name) == 16 and all(c in "0123456789abcdef" for c in run.name)


@pytest.mark.parametrize("bad", ["../x", "..", "/etc", "a/b", "", ".", "x\n", "a b"])
def test_run_ids_cannot_name_a_path(tmp_path, bad):
    from kdzoo import ConfigError
    from kdzoo.bench.execution.store import RunStore
    store = RunStore(tmp_path / "out")
    with pytest.raises(ConfigError, match="is not a plain name"):
        store.run_dir(bad)


def test_a_plan_pointing_outside_out_is_refused(tmp_path, capsys):
    """A damaged or hand-edited plan.json cannot make kdzoo read or write run folders outside OUT."""
    import json

    from kdzoo.bench.runner import run_bench
    from conftest import kdzoo_main as main
    from reliability_harness import write_recipe

    recipe = write_recipe(tmp_path / "recipe", seeds=(0,), name="relplan",
                          methods=["{name: reltest_count, label: c, args: {tag: c}}"])
    recipe.write_text(recipe.read_text().replace("train: {epochs: 3,", "train: {epochs: 1,"))
    out = tmp_path / "out"
    run_bench(recipe, out, device="cpu", progress=False)
    plan = json.loads((out / "plan.json").read_text())
    victim = tmp_path / "victim"
    (victim / "runs" / "x").mkdir(parents=True)
    plan["entries"][0]["hash"] = "../../victim/runs/x"
    (out / "plan.json").write_text(json.dumps(plan))
    before = _tree(victim)
    assert main(["leaderboard", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a plain name" in err, err
    assert _tree(victim) == before
