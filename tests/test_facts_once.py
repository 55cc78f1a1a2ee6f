"""Facts written once, checked from the source. Each file name a run or a sweep leaves on disk: the run folder's in
engine/runfolder.py, the run store's own (plan.json, recipe.yaml) in bench/execution/store.py; the teacher access
levels in teachers.py. Everything else in kdzoo/ imports them.

The source is read with ``ast`` (nothing is imported): every string literal outside those modules, f-string parts
included and docstrings left out, is searched for the names as whole words. A name that starts with a dot (``.lock``)
written right after an f-string field (``f"{digest}.lock"``) is another file's suffix, not the name.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "kdzoo"
HOMES = {"engine/runfolder.py", "bench/execution/store.py"}
# the command line's help is built before kdzoo.bench is imported (it loads pandas: start-up time), so it names
# the store's plan file itself
EXCEPTIONS = {("cli/bench.py", "plan.json")}


def file_names(module: Path) -> set[str]:
    """The file names a module defines: module-level string constants that look like file names."""
    out = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            out |= {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)
                    and re.fullmatch(r"\.[a-z]+|[\w-]+\.[a-z]+", v.value)}
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def spelled(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) for each name written inside a string literal of ``source``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    suffixes = set()   # f-string parts right after a field: {digest}.lock
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            suffixes |= {id(b) for a, b in zip(node.values, node.values[1:]) if isinstance(a, ast.FormattedValue)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in skip:
            continue
        for name in names:
            for match in re.finditer(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", node.value):
                if not (name.startswith(".") and match.start() == 0 and id(node) in suffixes):
                    found.append((node.lineno, name))
    return found


def test_the_homes_define_the_names():
    runfolder = file_names(ROOT / "engine" / "runfolder.py")
    assert {"config.json", "checkpoint.pt", "metrics.jsonl", "model.pt", "result.json", ".lock", "error.log",
            "prepared.json"} <= runfolder
    assert {"plan.json", "recipe.yaml"} <= file_names(ROOT / "bench" / "execution" / "store.py")


def test_no_file_name_is_spelled_outside_its_home():
    names = set().union(*(file_names(ROOT / home) for home in HOMES))
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in HOMES:
            found += [f"{rel}:{line}: {name!r}" for line, name in spelled(path.read_text(encoding="utf-8"), names)
                      if (rel, name) not in EXCEPTIONS]
    assert found == []


@pytest.mark.parametrize("source, expected", [
    ('x = run_dir / "result.json"\n', [(1, "result.json")]),
    ('raise E(f"{p} has no model.pt: not finished")\n', [(1, "model.pt")]),
    ('HELP = "OUT/plan.json and OUT/runs/*/metrics.jsonl"\n', [(1, "metrics.jsonl"), (1, "plan.json")]),
    ('LOCK = ".lock"\n', [(1, ".lock")]),
    ('def f():\n    """Reads result.json."""\n    return RESULT\n', []),                  # a docstring
    ('lock = cache / f"{digest}.lock"\n', []),                                             # another file's suffix
    ('a = "old_result.json"\nb = ".plan.lock"\nc = "model.pth"\n', []),                  # other names
])
def test_the_search_finds_names_in_strings_only(source, expected):
    names = {"result.json", "model.pt", "metrics.jsonl", "plan.json", ".lock"}
    assert sorted(spelled(source, names)) == sorted(expected)


# ------------------------------------------------------------------ access levels
ACCESS = {"features", "logits", "probs", "topk", "topk:K", "label", "none"}


def listed_levels(source: str) -> list[int]:
    """Lines where three or more access levels are listed: in a tuple, list, set or dict, or in one string literal."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        elif isinstance(node, ast.Dict):
            items = [k.value for k in node.keys if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            items = re.findall(r"[\w:]+", node.value)
        else:
            continue
        if len(ACCESS.intersection(items)) >= 3:
            lines.append(node.lineno)
    return lines


def test_access_levels_are_listed_only_in_teachers():
    found = [f"{p.relative_to(ROOT).as_posix()}:{line}" for p in sorted(ROOT.rglob("*.py")) if p.name != "teachers.py"
             for line in listed_levels(p.read_text(encoding="utf-8"))]
    assert found == []
    assert listed_levels((ROOT / "teachers.py").read_text(encoding="utf-8"))   # the table itself is found


@pytest.mark.parametrize("source, found", [
    ('LEVELS = ("features", "logits", "probs")\n', True),
    ('RANK = {"logits": 4, "probs": 3, "label": 1}\n', True),
    ('HELP = "teacher access: logits | probs | topk:K"\n', True),
    ("HELP = f\"teacher access: {' | '.join(LEVELS)}\"\n", False),
    ('ok = ("logits", "probs")\n', False),
    ('def f():\n    """Works with logits, probs or label."""\n', False),
])
def test_the_search_finds_listed_levels(source, found):
    assert bool(listed_levels(source)) is found
