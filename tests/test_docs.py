"""What recipes/README.md says of the shipped recipes agrees with the recipes, every documented kdzoo command parses,
the README sets up with two make commands, and no documented command
is one that kdzoo refuses (issue 25, item 8)."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from kdzoo.bench.recipe.parse import load_recipe

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "recipes" / "README.md",
        *sorted((REPO / "docs").glob("*.md"))]
# what users read beside the committed results; not PROVENANCE.md, the maintainers' record of how the files
# there were made (which names the command that rebuilt them)
RESULT_DOCS = sorted(p for p in (REPO / "results").rglob("*.md") if p.name != "PROVENANCE.md")


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


def _documented_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every kdzoo command in the ```bash blocks of the documents (continued lines joined,
    comments, environment assignments and the way kdzoo is called dropped); a line with an elided part
    (``...``) is left out, it is not a command as written."""
    found = []
    for doc in DOCS + RESULT_DOCS:
        for block in re.findall(r"^```bash\n(.*?)^```$", doc.read_text(), flags=re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words and re.match(r"^[A-Z_]+=", words[0]):
                    words.pop(0)
                if words[:3] in (["python", "-m", "kdzoo"], [sys.executable, "-m", "kdzoo"]):
                    words = words[2:]
                if not words or not re.fullmatch(r"(\S*/)?kdzoo", words[0]) or "..." in words:
                    continue
                found.append((f"{doc.relative_to(REPO)}: {line.strip()}", words[1:]))
    return found


def test_documented_commands_are_ones_kdzoo_accepts():
    """Every kdzoo command a document shows names a real subcommand with options it takes (parsed, not run)."""
    from kdzoo.cli.main import build_parser

    commands = _documented_commands()
    wrong = []
    for where, argv in commands:
        try:
            build_parser().parse_args(argv)
        except (Exception, SystemExit) as exc:   # argparse exits 2; kdzoo's parser raises a ConfigError
            wrong.append(f"{where}  ({type(exc).__name__}: {exc})")
    assert not wrong, "\n".join(wrong)
    named = {argv[0] for _, argv in commands}
    assert {"bench", "tune", "compare", "train", "leaderboard"} <= named, named
    with pytest.raises((Exception, SystemExit)):
        build_parser().parse_args(["bench", "recipes/quickstart.yaml", "--wokers", "2"])


def test_the_readme_sets_up_with_two_make_commands():
    """The README's set-up is `make quickstart` and `make test`, both Makefile targets, and CI runs the second."""
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set-up: two commands", 1)[1]
    block = re.search(r"^```bash\n(.*?)^```$", setup, flags=re.S | re.M).group(1)
    commands = [line.split("#")[0].split() for line in block.splitlines() if line.strip()]
    assert commands == [["make", "quickstart"], ["make", "test"]]
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), flags=re.M))
    assert {"quickstart", "test"} <= targets
    assert re.search(r"^\s*(exec\s+)?make test\b", (REPO / ".ci" / "run").read_text(), flags=re.M)
