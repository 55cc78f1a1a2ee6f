"""Every ```python block of the documents a user pastes from runs as pasted (issue 16, item 5): README.md
(adding a loss) and docs/usage.md (the Python API), each as a script and line by line in Python's prompt."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "docs/usage.md")


def _blocks(name: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", (REPO / name).read_text(), flags=re.S | re.M)


BLOCKS = [code for name in DOCUMENTS for code in _blocks(name)]
IDS = [f"{name}:block{i + 1}" for name in DOCUMENTS for i in range(len(_blocks(name)))]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_documents_have_python_blocks(name):
    """README.md shows how to add a loss, docs/usage.md the Python API: both in blocks these tests run."""
    assert _blocks(name), f"{name} has no ```python block"
    assert "register_loss" in "".join(_blocks("README.md")) and "build_loss" in "".join(_blocks("docs/usage.md"))


@pytest.mark.parametrize("code", BLOCKS, ids=IDS)
def test_readme_python_block_runs(tmp_path, code):
    (tmp_path / "block.py").write_text(code)
    proc = subprocess.run([sys.executable, "block.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]


PASTE = """\
import code, sys
errors = []
class Console(code.InteractiveConsole):
    def write(self, data):
        errors.append(data)
console = Console()
for line in open("block.py").read().splitlines():
    console.push(line)
console.push("")
sys.stderr.write("".join(errors))
sys.exit(1 if errors else 0)
"""


@pytest.mark.parametrize("code", BLOCKS, ids=IDS)
def test_readme_python_block_pastes_into_the_repl(tmp_path, code):
    """Pasted line by line into Python's interactive prompt (where a blank line ends a class), it runs too."""
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "paste.py").write_text(PASTE)
    proc = subprocess.run([sys.executable, "paste.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
