"""The suite leaves the checkout as it found it (issue 25, item 3): conftest's session fixture
``checkout_stays_clean`` compares ``git status`` before and after every test; here, that the comparison sees
what it must (a new file, a modified one) and not what it must not (git-ignored run folders)."""
from __future__ import annotations

import subprocess

import pytest

from conftest import git_status


def test_git_status_sees_new_and_modified_files_but_not_ignored_ones(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / ".gitignore").write_text("/runs/\n")
    (tmp_path / "kept.txt").write_text("a\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    before = git_status(tmp_path)
    assert before == set()
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "result.json").write_text("{}")        # ignored: allowed
    assert git_status(tmp_path) == set()
    (tmp_path / ".kdzoo-cache").mkdir()
    (tmp_path / ".kdzoo-cache" / "gen.pt").write_text("")             # new, not ignored: caught
    (tmp_path / "kept.txt").write_text("b\n")                         # modified: caught
    assert git_status(tmp_path) - before == {"?? .kdzoo-cache/gen.pt", " M kept.txt"}


def test_outside_a_checkout_there_is_nothing_to_compare(tmp_path):
    assert git_status(tmp_path / "nowhere") is None
