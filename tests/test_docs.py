"""What recipes/README.md says of the shipped recipes agrees with the recipes, and no documented command
is one that kdzoo refuses (issue 25, item 8)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdzoo.bench.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "recipes" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# what users read beside the committed results; not PROVENANCE.md, the maintainers' record of how the files
# there were made (which names the command that rebuilt them)
RESULT_DOCS = sorted(p for p in (REPO / "results").glob("*/*.md") if p.name != "PROVENANCE.md")


@pytest.mark.parametrize("name", ["quickstart", "fashion_mnist"])
def test_the_recipe_table_gives_each_recipes_seeds(name):
    table = (REPO / "recipes" / "README.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| `{name}.yaml`"))
    seeds = len(load_recipe(REPO / "recipes" / f"{name}.yaml").seeds)
    assert re.search(rf"\b{seeds} seeds\b", row), row


def test_no_documented_command_rebuilds_a_committed_reference():
    """`kdzoo leaderboard results/NAME` exits 2 (a committed reference holds no run store to rebuild from), and
    with --from-rows it rewrites the reference's tables: no document a user reads says to run either."""
    command = re.compile(r"kdzoo leaderboard\b[^#]*?(?<![\w/.-])(\./)?results/")   # a comment after # may name it
    found = [f"{doc.relative_to(REPO)}: {line.strip()}" for doc in DOCS + RESULT_DOCS
             for line in doc.read_text().splitlines() if command.search(line)]
    assert found == []
    assert RESULT_DOCS and command.search("python -m kdzoo leaderboard --from-rows ./results/quickstart")
    assert not command.search("kdzoo leaderboard runs/quickstart   # not results/quickstart")
