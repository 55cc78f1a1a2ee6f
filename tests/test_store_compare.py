"""``kdzoo compare`` counts only what it can trust: duplicate rows are not extra seeds, values that are not
finite numbers are named with their CSV line, an empty leaderboard or two that share no row exit 2, and a
row on one side only is named as such (and fails ``--strict``). Built on copies of the committed quick-start."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kdzoo.bench.report import compare

from conftest import kdzoo_main as main, unwrapped

QUICKSTART = Path(__file__).resolve().parents[1] / "results" / "quickstart"


def _copy(tmp_path: Path, name: str, change=None) -> Path:
    df = pd.read_csv(QUICKSTART / "leaderboard.csv", keep_default_na=False, dtype=str)
    if change is not None:
        df = change(df)
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    return path


def _students(df: pd.DataFrame, label: str) -> pd.Series:
    return (df.role == "student") & (df.label == label)


def _shift(points: float):
    def change(df):
        rows = _students(df, "kd")
        df.loc[rows, "top1"] = (df.loc[rows, "top1"].astype(float) + points).map(str)
        return df
    return change


def _one_line(capsys, argv: list[str]) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("kdzoo: error: "), captured
    return lines[0]


def test_copies_of_rows_count_once_with_a_note(tmp_path, capsys):
    """The same rerun, pasted five times: the same verdicts and seed counts as the rerun itself."""
    once = _copy(tmp_path, "once", _shift(1.5))
    five = _copy(tmp_path, "five", lambda df: pd.concat([_shift(1.5)(df)] * 5, ignore_index=True))
    rows_once, _ = compare.compare_paths(QUICKSTART, once)
    notes: list[str] = []
    rows_five, _ = compare.compare_paths(QUICKSTART, five, notes=notes)
    assert [(r.label, r.verdict, r.new.n) for r in rows_five] == [(r.label, r.verdict, r.new.n) for r in rows_once]
    students = int((pd.read_csv(once).role == "student").sum())
    assert notes == [f"{five}: {4 * students} duplicate rows (same pair, method, access and seed) counted once"]
    assert main(["compare", str(QUICKSTART), str(five)]) == 0
    assert unwrapped(f"note: {notes[0]}") in unwrapped(capsys.readouterr().out)   # wrapped like every line


def test_one_seed_with_two_values_is_refused(tmp_path, capsys):
    def twice(df):
        extra = df[_students(df, "kd")].head(1).copy()
        extra["top1"] = "12.5"
        return pd.concat([df, extra], ignore_index=True)
    path = _copy(tmp_path, "twice", twice)
    line = _one_line(capsys, ["compare", str(QUICKSTART), str(path)])
    assert f"{path} lines 4, 18: fmnist_teacher→fmnist_cnn_tiny kd (logits) seed 0 appears 2 times" in line
    assert "different top1 (74.17, 12.5); keep one row per seed" in line


@pytest.mark.parametrize("value,what", [("abc", "'abc' of {who} is not a number"),
                                        ("44,13", "'44,13' of {who} is not a number"),
                                        ("inf", "'inf' of {who} is not a finite number"),
                                        ("nan", "'nan' of {who} is not a finite number"),
                                        ("", "of {who} is empty")])
def test_a_value_that_is_not_a_finite_number_is_named_with_its_line(tmp_path, capsys, value, what):
    def spoil(df):
        df.loc[df.index[_students(df, "kd")][1], "top1"] = value
        return df
    path = _copy(tmp_path, "spoilt", spoil)
    line = _one_line(capsys, ["compare", str(QUICKSTART), str(path)])
    who = "fmnist_teacher→fmnist_cnn_tiny kd (logits) seed 1"
    assert line == f"kdzoo: error: {path} line 9: top1 {what.format(who=who)}"


@pytest.mark.parametrize("content", ["header", "zero bytes", "no finished run"])
def test_an_empty_leaderboard_exits_2(tmp_path, capsys, content):
    path = tmp_path / "empty.csv"
    if content == "header":
        path.write_text((QUICKSTART / "leaderboard.csv").read_text().splitlines()[0] + "\n")
    elif content == "zero bytes":
        path.write_bytes(b"")
    else:
        path = _copy(tmp_path, "empty", lambda df: df.assign(status="failed"))
    line = _one_line(capsys, ["compare", str(QUICKSTART), str(path)])
    assert str(path) in line
    assert ("holds no finished student run" in line) if content != "zero bytes" else ("cannot be read" in line)


def test_folders_that_share_no_row_exit_2_in_one_line(tmp_path, capsys):
    other = _copy(tmp_path, "other", lambda df: df.assign(teacher="resnet56", student="resnet20"))
    line = _one_line(capsys, ["compare", str(QUICKSTART), str(other)])
    assert line.startswith("kdzoo: error: the two leaderboards share no row (pair, method, access): the reference "
                           "has fmnist_teacher→fmnist_cnn_tiny ce, fmnist_teacher→fmnist_cnn_tiny kd and ")
    assert "the new one resnet56→resnet20 ce, resnet56→resnet20 kd and " in line
    assert _one_line(capsys, ["compare", str(QUICKSTART), str(other), "--strict"]) == line


def test_a_row_on_one_side_only_is_named_so_and_fails_strict(tmp_path, capsys):
    less = _copy(tmp_path, "less", lambda df: df[~_students(df, "kd")])
    rows, _ = compare.compare_paths(QUICKSTART, less)
    (kd,) = [r for r in rows if r.label == "kd"]
    assert kd.verdict == "reference only" and compare.note(kd) == "absent from the new run"
    others = [r for r in rows if r.label != "kd"]
    assert others and all(r.verdict not in compare.ONE_SIDED + ("too few",) for r in others)
    assert "1 in the reference only" in compare.summary_line(rows, 1.0, 0.05)
    assert main(["compare", str(QUICKSTART), str(less)]) == 0
    out = capsys.readouterr().out
    assert "needs ≥ 2 finished seeds" not in out and "absent from the new run" in out
    assert main(["compare", str(QUICKSTART), str(less), "--strict"]) == 1
    rows, _ = compare.compare_paths(less, QUICKSTART)
    assert [r.verdict for r in rows if r.label == "kd"] == ["new only"]


def test_a_label_that_would_break_the_table_is_refused(tmp_path, capsys):
    path = _copy(tmp_path, "label", lambda df: df.assign(label=df.label.where(df.label != "dkd", "dkd; kd")))
    line = _one_line(capsys, ["compare", str(QUICKSTART), str(path)])
    assert f"{path} line 5: label 'dkd; kd' may hold only" in line
