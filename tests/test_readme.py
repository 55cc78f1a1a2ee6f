"""Every ```python block in README.md runs as pasted (issue 16, item 5)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```$", (REPO / "README.md").read_text(), flags=re.S | re.M)


def test_readme_has_python_blocks():
    assert BLOCKS, "README.md has no ```python block (the Python API section should have one)"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
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


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_readme_python_block_pastes_into_the_repl(tmp_path, code):
    """Pasted line by line into Python's interactive prompt (where a blank line ends a class), it runs too."""
    (tmp_path / "block.py").write_text(code)
    (tmp_path / "paste.py").write_text(PASTE)
    proc = subprocess.run([sys.executable, "paste.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
