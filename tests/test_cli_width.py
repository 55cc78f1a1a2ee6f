"""Every line the command line prints fits the terminal, 80 columns included (issue 25, item 2): help, lists,
dry runs, a sweep's tables (with the `vs CE` verdict), the leaderboard, comparisons and a training run, under
COLUMNS=80; and wider terminals get wider, one-line tables."""
from __future__ import annotations

import io
import json
import queue
import re
from pathlib import Path

import pytest
from rich.console import Console

from kdzoo.engine import terminal
from kdzoo.engine.progress import Progress, QueueProgress

from conftest import kdzoo_main, unwrapped

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).with_name("bench_plugin.py")
QUICKSTART = REPO / "results" / "quickstart"


def _lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    return (captured.out + captured.err).splitlines()


def _fits(lines: list[str], width: int = 80) -> None:
    long = [line for line in lines if len(line) > width]
    assert not long, "\n".join(long)


@pytest.fixture
def cols80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


@pytest.mark.parametrize("argv", [[], ["train"], ["bench"], ["compare"], ["leaderboard"], ["list"], ["transfer"]])
def test_help_fits_80_columns(cols80, capsys, argv):
    with pytest.raises(SystemExit):
        kdzoo_main([*argv, "--help"])
    lines = _lines(capsys)
    assert len(lines) > 3
    _fits(lines)


@pytest.mark.parametrize("what", [["losses"], ["losses", "--wide"], ["losses", "--space"], ["models"], ["datasets"]])
def test_list_fits_80_columns(cols80, capsys, what):
    assert kdzoo_main(["list", *what]) == 0
    _fits(_lines(capsys))


def test_dry_run_and_compare_fit_80_columns(cols80, capsys, tmp_path):
    assert kdzoo_main(["bench", str(REPO / "recipes" / "quickstart.yaml"), "--out", str(tmp_path / "q"),
                       "--dry-run"]) == 0
    lines = _lines(capsys)
    _fits(lines)
    assert any(line.startswith("fmnist_teacher → fmnist_cnn_tiny") for line in lines)   # one table per pair
    assert kdzoo_main(["compare", str(QUICKSTART), str(QUICKSTART)]) == 0
    lines = _lines(capsys)
    _fits(lines)
    rows = [line for line in lines if re.match(r"(ce|kd|dkd|rld|mcld)\s", line)]
    assert len(rows) == 5 and all("consistent" in line for line in rows)      # one row per method, not fragments


def _recipe(tmp_path: Path) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(f"""\
name: w
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16}}}}
pairs: [{{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}]
methods: [ce, kd, {{name: my_kd, label: a_rather_long_method_label}}]
seeds: [0, 1]
train: {{epochs: 2, batch_size: 16}}
""")
    return path


def test_a_sweep_its_leaderboard_and_a_train_run_fit_80_columns(cols80, capsys, tmp_path):
    out = tmp_path / "out"
    assert kdzoo_main(["bench", str(_recipe(tmp_path)), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    lines = _lines(capsys)
    _fits(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("rank "))
    assert lines[header].split() == ["rank", "method", "mean", "±", "std", "Δ", "vs", "CE", "vs", "CE", "Δ", "vs",
                                     "KD", "seeds"]
    kd = next(line for line in lines[header:] if line.split()[1:2] == ["kd"])
    # the `vs CE` verdict of leaderboard.md (a tiny run may also end near chance: then it reads collapsed)
    assert re.search(r" (better|worse|tied|collapsed) ", kd), kd
    assert kdzoo_main(["leaderboard", str(out)]) == 0
    _fits(_lines(capsys))
    assert kdzoo_main(["compare", str(out), str(out)]) == 0
    _fits(_lines(capsys))
    plan = json.loads((out / "plan.json").read_text())
    teacher = out / "runs" / next(e["hash"] for e in plan["entries"] if e["role"] == "teacher") / "model.pt"
    assert kdzoo_main(["train", "--dataset", "bench-synth", "--student", "fmnist_cnn_tiny", "--teacher-ckpt",
                       str(teacher), "--teacher", "fmnist_mlp", "--epochs", "1", "--batch-size", "16",
                       "--out", str(tmp_path / "a_run_folder_with_a_long_name" / ("x" * 40)), "--no-progress"]) == 0
    _fits(_lines(capsys))


def test_wider_terminals_get_one_line_rows(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    assert terminal.width() == 200
    assert kdzoo_main(["compare", str(QUICKSTART), str(QUICKSTART)]) == 0
    lines = _lines(capsys)
    _fits(lines, 200)
    kd = next(line for line in lines if line.startswith("kd "))
    assert "(n=3)" in kd and re.search(r"\+0\.00 \[-\d\.\d\d, \+\d\.\d\d\]", kd) and "conclusive" in kd


def test_print_table_moves_details_then_notes_to_fit():
    """The three layouts of terminal.print_table, from the widest to the narrowest."""
    rows = [["kd", ("75.16", "[-1.95, +1.95]"), "identical, seed by seed; conclusive with about 8 seeds per side"]]

    def shown(width: int) -> list[str]:
        out = Console(file=io.StringIO(), width=width, color_system=None)
        terminal.print_table(["method", "Δ", "note"], rows, spill=("note",), out=out)
        lines = [line.rstrip() for line in out.file.getvalue().splitlines()]
        assert all(len(line) <= width for line in lines), lines
        return lines

    wide = shown(100)              # 6 + 20 + 63 columns and two gaps of 2
    assert len(wide) == 3 and "75.16 [-1.95, +1.95]" in wide[2] and "per side" in wide[2]
    stacked = shown(90)            # the detail goes under its value; the note stays a column
    assert stacked[2].split()[:2] == ["kd", "75.16"] and "[-1.95, +1.95]" in stacked[3]
    spilled = shown(40)            # the note moves under the table
    assert "note:" in spilled and any(line.startswith("  kd: identical") for line in spilled)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


PROBLEM = ("interrupted teacher fmnist_mlp (cannot write " + "/a/rather/long/output/folder" * 4
           + "/checkpoint.pt: No space left on device) (5d2903ed9d14cfd8); run the same command again to resume it")


def _printed(is_terminal: bool, problem: bool) -> list[str]:
    out = Console(file=io.StringIO(), width=80, force_terminal=is_terminal, color_system=None)
    terminal.line(out, PROBLEM, problem=problem)
    return out.file.getvalue().splitlines()


def test_problem_lines_wrap_on_a_terminal_and_stay_whole_in_a_pipe_or_a_log(monkeypatch):
    """A line that reports a problem (an error, a warning, a run left unfinished) wraps to the terminal, and in
    a pipe or a log stays one line that grep finds whole, with the file it names; other lines wrap in both."""
    monkeypatch.setenv("COLUMNS", "80")
    on_terminal, piped = _printed(True, True), _printed(False, True)
    assert piped == [PROBLEM]
    assert len(on_terminal) > 1 and max(map(len, on_terminal)) <= 80 and unwrapped(PROBLEM) == unwrapped(
        "".join(on_terminal))
    assert _printed(False, False) == _printed(True, False) == on_terminal     # an ordinary line wraps in a pipe too
    # kdzoo's warnings (engine.terminal.problem_text, installed by the CLI and in its worker processes)
    assert terminal.problem_text(PROBLEM, io.StringIO()) == PROBLEM
    wrapped = terminal.problem_text(PROBLEM, _Tty()).splitlines()
    assert len(wrapped) > 1 and max(map(len, wrapped)) <= 80 and unwrapped("".join(wrapped)) == unwrapped(PROBLEM)


def test_a_workers_problem_line_is_laid_out_where_it_is_printed():
    """A run in a worker process sends its lines to the sweep's process (QueueProgress): a problem line stays
    one, laid out by the sweep's console (whole in a log, wrapped on a terminal)."""
    events: queue.Queue = queue.Queue()
    QueueProgress(events, unit=0).print(PROBLEM, problem=True)
    QueueProgress(events, unit=0).print(PROBLEM)
    for is_terminal, problem_lines in ((False, 1), (True, len(_printed(True, True)))):
        out = Console(file=io.StringIO(), width=80, force_terminal=is_terminal, color_system=None)
        shown = Progress(enabled=False, console=out, lines=True)
        shown.relay(events.queue[0])
        assert len(out.file.getvalue().splitlines()) == problem_lines
        shown.relay(events.queue[1])                 # the ordinary line after it: wrapped at 80 columns
        assert max(map(len, out.file.getvalue().splitlines()[problem_lines:])) <= 80


def test_a_slurm_jobs_warnings_are_one_line_in_its_log(monkeypatch):
    """A Slurm job is a worker process of its own: kdzoo's warnings in its log read as in the sweep's (one line,
    no source location), not in Python's default form."""
    import warnings

    from kdzoo.bench.execution import slurm
    from kdzoo.errors import RecoveryWarning

    def python_format(message, category, filename, lineno, line=None):   # a fresh job process: Python's own
        return f"{filename}:{lineno}: {category.__name__}: {message}\n"

    monkeypatch.setattr(warnings, "formatwarning", python_format)
    monkeypatch.setattr(slurm, "execute_unit", lambda payload, progress: {})
    message = "runs/abc/metrics.jsonl is truncated; rewritten from the checkpoint"
    assert slurm.UnitJob()({}) == {}
    assert warnings.formatwarning(message, RecoveryWarning, "recovery.py", 35) == \
        f"kdzoo: RecoveryWarning: {message}\n"
    assert warnings.formatwarning("x", UserWarning, "f.py", 1) == "f.py:1: UserWarning: x\n"   # others' warnings
