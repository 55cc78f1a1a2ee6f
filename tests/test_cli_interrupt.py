"""Ctrl-C during the test suite stops it: the CLI turns Ctrl-C into exit status 130, so a test that runs the
CLI in pytest's own process must raise the interrupt again (conftest.kdzoo_main), or pytest would record
one failed test and run on for minutes (issue 25, item 4)."""
from __future__ import annotations

import ast
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, kdzoo_main

cli_main = importlib.import_module("kdzoo.cli.main")   # the module (kdzoo.cli's attribute "main" is the function)

TESTS = Path(__file__).resolve().parent
PLUGIN = TESTS / "bench_plugin.py"


def _imports_cli_main(path: Path) -> list[int]:
    """Lines where ``path`` imports kdzoo's ``main`` (from kdzoo.cli or kdzoo.cli.main) or the module itself."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module in ("kdzoo.cli", "kdzoo.cli.main"):
            if any(a.name == "main" for a in node.names):
                lines.append(node.lineno)
        elif isinstance(node, ast.Import) and any(a.name == "kdzoo.cli.main" for a in node.names):
            lines.append(node.lineno)
    return lines


def test_every_test_runs_the_cli_in_process_through_kdzoo_main():
    """conftest.kdzoo_main is the only door to the CLI inside pytest's process (subprocess scripts aside)."""
    allowed = {"conftest.py", Path(__file__).name}
    found = {p.name: lines for p in sorted(TESTS.glob("test_*.py"))
             if p.name not in allowed and (lines := _imports_cli_main(p))}
    assert found == {}, f"import kdzoo_main from conftest instead of kdzoo.cli's main: {found}"


def test_kdzoo_main_raises_the_interrupt_the_cli_turns_into_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "_cmd_list", interrupted)
    assert cli_main.main(["list", "losses"]) == cli_main.EXIT_INTERRUPTED     # the user's CLI: exit 130
    assert "interrupted" in capsys.readouterr().err
    with pytest.raises(KeyboardInterrupt):
        kdzoo_main(["list", "losses"])


INNER = """\
import faulthandler
import sys
sys.path.insert(0, {tests!r})
from conftest import kdzoo_main

# every thread's stack every 30 s, to a file the outer test shows if this process ever hangs (pytest captures
# stderr, and a hung process never hands it back)
faulthandler.dump_traceback_later(30, repeat=True, file=open({dump!r}, "w"))


def test_a_long_sweep_in_process(tmp_path):
    kdzoo_main(["bench", {recipe!r}, "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1"])


def test_after_it():
    open({after!r}, "w").write("ran")
"""


def test_ctrl_c_stops_pytest_while_a_test_runs_the_cli(tmp_path):
    """A pytest process running a long sweep in-process gets SIGINT (what Ctrl-C sends): it stops at once,
    exit status 2 (interrupted), and runs no further test."""
    recipe = tmp_path / "long.yaml"
    recipe.write_text(f"""\
name: long
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16}}}}
pairs: [{{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}]
methods: [{{name: my_kd, args: {{delay: 0.5}}}}]
seeds: [0]
train: {{epochs: 100, batch_size: 16}}
""")
    started, after, dump = tmp_path / "started", tmp_path / "after", tmp_path / "stacks.txt"
    (tmp_path / "inner").mkdir()
    inner = tmp_path / "inner" / "test_inner.py"
    inner.write_text(INNER.format(tests=str(TESTS), recipe=str(recipe), after=str(after), dump=str(dump)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "KDZOO_BENCH_COUNTER": str(started)}
    # SIGINT at its default in the child, as under a terminal: a suite started in the background by a
    # non-interactive shell (`cmd &`) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(inner)],
                            cwd=tmp_path / "inner", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=restore)
    try:
        deadline = time.monotonic() + 240
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)     # until the plugin loss takes its first step (it writes the file)
        assert started.exists(), proc.communicate(timeout=60)[0] if proc.poll() is not None else "never started"
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=120)   # the loss sleeps 0.5 s a step: this is far from the limit
        except subprocess.TimeoutExpired:
            stacks = dump.read_text()[-6000:] if dump.exists() else "(no stack dump written)"
            pytest.fail(f"still running 120 s after SIGINT; its threads' last stacks:\n{stacks}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, out               # pytest's "interrupted", not 1 (a test failed)
    assert "KeyboardInterrupt" in out, out
    assert not after.exists(), out
