"""An output folder holds the sweep of one recipe: another recipe on the same ``--out`` is refused in one line
(run one after the other, or started together), unless the user asks to add it; an edited recipe is the
same recipe (same name), with a note. Concurrent sweeps of one recipe are tests/test_reliability_concurrency.py."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import kdzoo_main as main, unwrapped
from reliability_harness import bench_argv, leaderboard, start_bench, write_recipe

ONE = ["ce", "{name: reltest_count, label: count, args: {tag: a}}"]
OTHER = ["ce", "{name: reltest_count, label: other, args: {tag: b}}"]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
            and not p.name.endswith(".lock")}


def _recipe(folder: Path, name: str, methods: list[str]) -> Path:
    path = write_recipe(folder, seeds=(0,), methods=methods, name=name)
    path.write_text(path.read_text().replace("train: {epochs: 3,", "train: {epochs: 1,"))
    return path


def test_a_second_recipe_on_the_same_out_is_refused_unless_added(tmp_path, capsys):
    out = tmp_path / "out"
    first, second = _recipe(tmp_path / "a", "relfirst", ONE), _recipe(tmp_path / "b", "relsecond", OTHER)
    assert main(bench_argv(first, out)) == 0
    before = _files(out)
    capsys.readouterr()
    for extra in ([], ["--dry-run"]):
        assert main(bench_argv(second, out, *extra)) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (f"kdzoo: error: {out.absolute()} holds the sweep of recipe 'relfirst', not 'relsecond': give "
                        f"this one another --out, or add --add-to-out to run it here (the folder's plan and "
                        f"leaderboard then show 'relsecond'; the runs of 'relfirst' stay in runs/)")
    assert _files(out) == before                                   # nothing written, nothing trained
    assert main(bench_argv(second, out, "--add-to-out")) == 0
    assert json.loads((out / "plan.json").read_text())["recipe"] == "relsecond"
    assert {r["label"] for r in leaderboard(out)} == {"ce", "other"}


def test_an_edited_recipe_is_the_same_recipe_with_a_note(tmp_path, capsys):
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, "reledit", ONE)
    assert main(bench_argv(recipe, out)) == 0
    recipe.write_text(recipe.read_text().replace("methods:\n", "methods:\n  - {name: reltest_count, label: more, "
                                                              "args: {tag: c}}\n"))
    capsys.readouterr()
    assert main(bench_argv(recipe, out)) == 0
    text = capsys.readouterr()
    note = f"note: recipe 'reledit' changed since {out.absolute()} was last planned"   # wrapped like every line
    assert unwrapped(note) in unwrapped(text.out + text.err)
    assert {r["label"] for r in leaderboard(out)} == {"ce", "count", "more"}
    assert "3 runs: 3 finished (1 trained now, 2 were already done)" in text.out    # the unchanged runs reused


def test_two_recipes_started_together_on_one_folder_do_not_mix(tmp_path):
    """Whichever writes its plan first owns the folder; the other is refused in one line, and the
    leaderboard shows only the owner's methods."""
    out = tmp_path / "out"
    first, second = _recipe(tmp_path / "a", "relfirst", ONE), _recipe(tmp_path / "b", "relsecond", OTHER)
    procs = [start_bench(bench_argv(r, out), tmp_path / f"{r.stem}.log") for r in (first, second)]
    for proc in procs:
        proc.join(300)
    codes = {r.stem: p.exitcode for r, p in zip((first, second), procs)}
    assert sorted(codes.values()) == [0, 2], codes
    owner = next(name for name, code in codes.items() if code == 0)
    refused = next(name for name, code in codes.items() if code == 2)
    lines = (tmp_path / f"{refused}.log").read_text().strip().splitlines()
    assert lines[-1].startswith(f"kdzoo: error: {out.absolute()} holds the sweep of recipe '{owner}', not "
                                f"'{refused}'"), lines
    assert json.loads((out / "plan.json").read_text())["recipe"] == owner
    assert {r["label"] for r in leaderboard(out)} == ({"ce", "count"} if owner == "relfirst" else {"ce", "other"})
