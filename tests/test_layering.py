"""The layering of docs/design.md, checked from the source: which kdzoo package may import which,
and inside ``kdzoo/bench``, which of its folders may import which.

Imports are read with ``ast`` (nothing is imported), relative ones resolved against the file's
package; imports under ``if TYPE_CHECKING:`` are annotations only and do not count. A change that
makes the trainer import a method, a loss import the engine or another loss, or the teachers
import the losses fails here.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "kdzoo"
MAX_LINES = 400   # small modules with one job each

# The floor every layer stands on: one-line errors and the low-level helpers (atomic writes, hashing, JSON lines).
FLOOR = {"errors", "utils"}

# layer -> the layers it may import (its own layer always allowed, except inside losses: see below).
# A layer is the first part of the module path after "kdzoo" ("losses.base" is named on its own).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "utils": {"errors"},
    "space": {"errors", "utils"},
    "registry": {"errors", "utils", "space"},
    "teachers": {"errors", "utils"},
    "stats": {"errors", "utils"},   # numbers in, verdicts out; loads scipy, which training must not
    "losses": {"errors", "utils", "registry", "space"},
    "data": {"errors", "utils", "registry"},
    "models": {"errors", "utils", "registry"},
    # preparation stages (MEKD's generator): found by the engine through the registry, never imported by it
    "stages": {"errors", "utils", "registry", "teachers", "data", "models"},
    "engine": {"errors", "utils", "space", "registry", "teachers", "losses.base", "data", "models"},
    "bench": {"kdzoo", "errors", "utils", "space", "registry", "teachers", "losses", "stages", "data", "models",
              "engine", "stats"},
    "apps": {"kdzoo", "errors", "utils", "space", "registry", "teachers", "losses", "stages", "data", "models",
             "engine", "stats"},
    # report: reads a bench output folder's files (their names and kdzoo compare's table come from bench)
    "report": {"kdzoo", "errors", "utils", "teachers", "engine", "bench", "stats"},
    "cli": {"kdzoo", "errors", "utils", "space", "registry", "teachers", "losses", "stages", "data", "models",
            "engine", "bench", "apps", "report", "stats"},
    "__main__": {"cli"},
    "kdzoo": {"errors", "utils", "space", "registry", "teachers", "losses", "data", "models"},   # the package's __init__
}

# Inside kdzoo/bench, one folder (or module) per job; a part imports only parts of a lower rank (and itself):
# a recipe is read, planned into RunSpecs, executed, reported; the runner drives the four, tune uses the
# runner. "" is the package's __init__ (its public names). The B2KD studies live in benchmarks/.
BENCH_RANK: dict[str, int] = {"recipe": 0, "spec": 0, "plan": 1, "execution": 2, "report": 3, "runner": 4, "tune": 5, "": 6}
# imports that climb, each with its reason (lazy imports, inside a function)
BENCH_CLIMBS: dict[tuple[str, str], str] = {
    ("kdzoo.bench.execution.launch", "kdzoo.bench.tune.pruning"):
        "a tuning trial's pruner (Optuna) is built in the worker process that trains the trial",
}


def module_name(path: Path, root: Path) -> tuple[str, str]:
    """(module, package it lives in) for a file under ``root`` (the kdzoo folder)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _imports(tree: ast.AST) -> list[ast.stmt]:
    """Import statements, leaving out ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.stmt] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out += [n for child in node.orelse for n in _imports(ast.Module(body=[child], type_ignores=[]))]
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        out += _imports(node)
    return out


def edges(root: Path) -> set[tuple[str, str]]:
    """(importer, imported) for every import of a kdzoo module by a kdzoo module."""
    out = set()
    for path in sorted(root.rglob("*.py")):
        module, package = module_name(path, root)
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out |= {(module, a.name) for a in node.names if a.name.split(".")[0] == "kdzoo"}
                continue
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "kdzoo":
                continue
            for alias in node.names:  # "from . import distributed" imports the module kdzoo.engine.distributed
                sub = root.parent.joinpath(*f"{target}.{alias.name}".split("."))
                is_module = sub.with_suffix(".py").is_file() or sub.is_dir()
                out.add((module, f"{target}.{alias.name}" if is_module else target))
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "kdzoo"
    if parts[1] == "losses" and len(parts) > 2 and parts[2] == "base":
        return "losses.base"
    return parts[1]


def _within_losses(src: str, dst: str) -> str | None:
    """Inside kdzoo.losses: a method's file imports only base and the private helpers (``_name``)."""
    s, d = src.split(".")[2:], dst.split(".")[2:]
    if not s or not d:  # the package __init__ (imports base, then every method to register it)
        return None if not s else (f"{src} imports the losses package" if not d else None)
    if d[0] == "base" or d[0].startswith("_"):
        return None
    if s[0] == d[0]:
        return None
    return f"{src} imports another loss's module {dst} (shared helpers belong in losses/base.py)"


def violations(root: Path) -> list[str]:
    problems = []
    for src, dst in sorted(edges(root)):
        a, b = layer(src), layer(dst)
        a_pkg, b_pkg = a.split(".")[0], b.split(".")[0]
        if a_pkg == "losses" and b_pkg == "losses":
            problem = _within_losses(src, dst)
            if problem:
                problems.append(problem)
            continue
        if a_pkg == b_pkg and a_pkg != "kdzoo":
            continue
        allowed = ALLOWED.get(a, ALLOWED.get(a_pkg, set()))
        if b not in allowed and b_pkg not in allowed:
            problems.append(f"{src} imports {dst}: layer '{a_pkg}' may import only {sorted(allowed)}")
    return problems


def bench_part(module: str) -> str:
    """The part of kdzoo.bench a module belongs to: its folder, or its own name at the top."""
    parts = module.split(".")[2:]
    return parts[0] if parts else ""


def bench_violations(root: Path) -> list[str]:
    problems = []
    for src, dst in sorted(edges(root)):
        if not (src.startswith("kdzoo.bench") and dst.startswith("kdzoo.bench.")) or (src, dst) in BENCH_CLIMBS:
            continue
        a, b = bench_part(src), bench_part(dst)
        if a not in BENCH_RANK or b not in BENCH_RANK:
            problems.append(f"{src} imports {dst}: kdzoo/bench/{a or b} has no rank in BENCH_RANK")
        elif a != b and BENCH_RANK[b] >= BENCH_RANK[a]:
            problems.append(f"{src} imports {dst}: bench part '{a}' may import only parts below it")
    return problems


def test_kdzoo_follows_its_layers():
    found = edges(ROOT)
    assert ("kdzoo.engine.trainer", "kdzoo.losses.base") in found  # the parser sees relative imports
    assert ("kdzoo.bench.execution.run", "kdzoo.engine.distributed") in found  # and "from ...engine import distributed"
    assert ("kdzoo.bench.execution.run", "kdzoo.bench.spec") in found    # and "from ..spec import RunSpec"
    assert violations(ROOT) == []
    assert bench_violations(ROOT) == []


def test_every_bench_part_has_a_rank_and_the_climbs_exist():
    """A new folder under kdzoo/bench gets a rank here (and a line in docs/design.md); an exception that no longer
    exists is removed."""
    parts = {p.stem if p.is_file() else p.name for p in (ROOT / "bench").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert parts == set(BENCH_RANK) - {""}
    assert set(BENCH_CLIMBS) <= edges(ROOT)


def test_the_floor_is_below_every_layer():
    """errors and utils may be imported by every layer, and import no layer but errors."""
    for name, allowed in ALLOWED.items():
        if name not in FLOOR and name != "__main__":
            assert FLOOR <= allowed, name
    assert ALLOWED["utils"] == {"errors"} and ALLOWED["errors"] == set()
    utils_imports = {dst for src, dst in edges(ROOT) if layer(src) == "utils" and layer(dst) != "utils"}
    assert utils_imports <= {"kdzoo.errors"}, utils_imports


@pytest.mark.parametrize("file, line, part", [
    ("bench/recipe/parse.py", "from ..plan import expand\n", "recipe"),
    ("bench/plan.py", "from .execution.store import RunStore\n", "plan"),
    ("bench/execution/store.py", "from ..report import leaderboard\n", "execution"),
    ("bench/report/curves.py", "from ..runner import run_bench\n", "report"),
    ("bench/spec.py", "from .plan import Plan\n", "spec"),
])
def test_a_bench_import_that_climbs_is_caught(tmp_path, file, line, part):
    copy = tmp_path / "kdzoo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / file, "a", encoding="utf-8") as f:
        f.write(line)
    found = bench_violations(copy)
    assert len(found) == 1 and f"bench part '{part}' may import only parts below it" in found[0], found


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "kdzoo"
    for name in ("", "engine", "losses", "bench", "cli"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text("")
    for name in ("errors.py", "registry.py", "teachers.py", "losses/base.py", "losses/dkd.py", "losses/_gan.py",
                 "engine/trainer.py"):
        (root / name).write_text("")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_a_violation_is_caught(tmp_path):
    root = _tree(tmp_path, {
        "engine/trainer.py": "from ..losses.base import DistillLoss\nfrom ..losses.dkd import DKD\n",
        "losses/kd.py": "from ..registry import register_loss\nfrom .base import check_logits\n"
                        "from ..engine import trainer\n",
        "losses/rld.py": "from .dkd import binary_log_probs\nfrom ._gan import Generator\n",
        "teachers.py": "from .losses.base import ACCESS_RANK\n",
        "losses/_gan.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .dkd import DKD\n",
        "cli/main.py": "from ..bench import runner\nimport kdzoo.engine.trainer\n",
        "bench/run.py": "from ..cli import main\n",
    })
    assert violations(root) == [
        "kdzoo.bench.run imports kdzoo.cli.main: layer 'bench' may import only "
        "['data', 'engine', 'errors', 'kdzoo', 'losses', 'models', 'registry', 'space', 'stages', 'stats', 'teachers', "
        "'utils']",
        "kdzoo.engine.trainer imports kdzoo.losses.dkd: layer 'engine' may import only "
        "['data', 'errors', 'losses.base', 'models', 'registry', 'space', 'teachers', 'utils']",
        "kdzoo.losses.kd imports kdzoo.engine.trainer: layer 'losses' may import only "
        "['errors', 'registry', 'space', 'utils']",
        "kdzoo.losses.rld imports another loss's module kdzoo.losses.dkd (shared helpers belong in losses/base.py)",
        "kdzoo.teachers imports kdzoo.losses.base: layer 'teachers' may import only ['errors', 'utils']",
    ]


@pytest.mark.parametrize("edge", [("engine/trainer.py", "from ..losses import mcld\n"),
                                  ("engine/prepare.py", "from ..stages import deprivatize\n"),
                                  ("losses/mekd.py", "from ..stages.dcgan import Generator\n"),
                                  ("stages/deprivatize.py", "from ..engine import runfolder\n"),
                                  ("engine/trainer.py", "from ..stats import verdict_table\n"),
                                  ("stats/verdicts.py", "from ..bench import leaderboard\n"),
                                  ("utils/atomic.py", "from ..engine import runfolder\n"),
                                  ("utils/hashing.py", "from ..registry import LOSSES\n"),
                                  ("utils/jsonl.py", "from ..stats import mean_std\n"),
                                  ("losses/mse.py", "from .dkd import DKD\n"),
                                  ("losses/base.py", "from ..engine.trainer import Trainer\n")])
def test_an_edge_injected_into_the_real_tree_is_caught(tmp_path, edge):
    """The real package, copied, with one forbidden import appended to one of its files."""
    copy = tmp_path / "kdzoo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    name, line = edge
    with open(copy / name, "a", encoding="utf-8") as f:
        f.write(line)
    found = violations(copy)
    assert len(found) == 1 and found[0].startswith(f"kdzoo.{name[:-3].replace('/', '.')} imports"), found


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
