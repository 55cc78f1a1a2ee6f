"""kdzoo compare: verdicts on synthetic data with known answers, the committed quick-start, and the CLI.

Also: ``kdzoo leaderboard`` refuses a folder without runs (exit 2, no file changed) and
``kdzoo bench`` writes outside results/ by default.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kdzoo.bench.report import compare
from kdzoo.bench.report.compare import Row, Sample, judge, sample
from kdzoo.stats import holm
from conftest import kdzoo_main as main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "results" / "quickstart"


# ------------------------------------------------------------- helpers
def test_holm_by_hand():
    # m = 4, alpha = 0.05: thresholds 0.0125, 0.0167, 0.025, 0.05 on the sorted p-values
    assert holm([0.01, 0.04, 0.03, 0.005], 0.05) == [True, False, False, True]
    assert holm([0.01, 0.015, 0.02, 0.04], 0.05) == [True, True, True, True]
    assert holm([0.013, 0.001], 0.05) == [True, True]    # 0.001 <= 0.025, then 0.013 <= 0.05
    assert holm([0.03, 0.03], 0.05) == [False, False]    # 0.03 > 0.025 at step 1 stops everything


def test_welch_interval_by_hand():
    ref, new = sample([1.0, 2.0, 3.0]), sample([2.0, 4.0, 6.0, 8.0])
    # se^2 = 1/3 + (20/3)/4 = 2; df = 2^2 / ((1/3)^2/2 + (5/3)^2/3) = 4 / (1/18 + 25/27)
    diff, se, df = compare.welch(ref, new)
    assert diff == pytest.approx(3.0)
    assert se == pytest.approx(np.sqrt(2.0))
    assert df == pytest.approx(4 / (1 / 18 + 25 / 27))


# ----------------------------------------------------- verdicts, known answers
def _rows(rng, n_rows, n_ref, n_new, shift=0.0, sigma=1.0, shifted=(0,)):
    rows = []
    for i in range(n_rows):
        a = rng.normal(70.0, sigma, n_ref)
        b = rng.normal(70.0 + (shift if i in shifted else 0.0), sigma, n_new)
        rows.append(Row("t", "s", f"m{i}", "logits", ref=sample(list(a)), new=sample(list(b))))
    return rows


def test_same_distribution_differs_in_at_most_5_percent_of_trials():
    rng = np.random.default_rng(0)
    trials = 600
    flagged = sum(any(r.verdict == "differs" for r in judge(_rows(rng, 10, 3, 3, shift=0.0), advise=False))
                  for _ in range(trials))
    # family-wise: some row of 10 flagged in <= 5% of trials (Holm); 600 trials, so allow 2 standard errors
    assert flagged / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)
    # without the correction it would be about 1 - 0.95^10 = 40%: the test is able to fail
    unc = sum(any(r.verdict == "differs" for r in judge(_rows(rng, 1, 3, 3), advise=False)) for _ in range(trials))
    assert unc / trials <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / trials)


def test_shift_of_three_sigma_with_five_seeds_differs():
    rng = np.random.default_rng(1)
    trials = 300
    hits = 0
    for _ in range(trials):
        rows = judge(_rows(rng, 1, 5, 5, shift=3.0, sigma=1.0), advise=False)
        hits += rows[0].verdict == "differs"
    assert hits / trials >= 0.9          # Welch power at 3 sigma, n = 5 per side, alpha 0.05: about 0.97
    assert hits / trials <= 1.0


def test_shift_flags_only_the_shifted_row():
    rng = np.random.default_rng(2)
    rows = judge(_rows(rng, 5, 5, 5, shift=6.0, sigma=0.5, shifted=(2,)))
    assert [r.verdict == "differs" for r in rows] == [False, False, True, False, False]


def test_many_seeds_of_one_distribution_reproduce():
    rng = np.random.default_rng(3)
    verdicts = [judge(_rows(rng, 1, 60, 60, sigma=0.8), advise=False)[0].verdict for _ in range(100)]
    assert verdicts.count("reproduced") == 100


def test_reproduced_is_rare_when_the_true_difference_exceeds_the_tolerance():
    # true shift 1.2 points > tolerance 1: 'reproduced' is the equivalence test's error, <= 2.5% per row
    rng = np.random.default_rng(4)
    trials, wrong, consistent = 400, 0, []
    for trial in range(trials):
        for r in judge(_rows(rng, 3, 3, 3, shift=1.2, sigma=1.0, shifted=(0, 1, 2)), advise=trial < 20):
            wrong += r.verdict == "reproduced"
            if r.verdict == "consistent" and trial < 20:
                consistent.append(r)
    assert wrong / (3 * trials) <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / (3 * trials))
    # small comparisons say what they could detect and how many seeds would settle them (more than now)
    assert consistent and all(r.detectable > 0 and (r.seeds_needed is None or r.seeds_needed > 3)
                              for r in consistent)
    r = judge([Row("t", "s", "kd", "logits", ref=sample([70.0]), new=sample([70.0, 70.5]))])[0]
    assert r.verdict == "too few"


def test_exact_copy_with_zero_spread():
    r = judge([Row("t", "s", "kd", "logits", ref=Sample(70.0, 0.0, 3), new=Sample(70.0, 0.0, 3))])[0]
    assert r.verdict == "reproduced"
    # significant but shown to lie within the tolerance: reproduced; beyond it: differs
    r = judge([Row("t", "s", "kd", "logits", ref=Sample(70.0, 0.0, 3), new=Sample(70.1, 0.0, 3))])[0]
    assert r.verdict == "reproduced" and r.p == 0.0
    r = judge([Row("t", "s", "kd", "logits", ref=Sample(70.0, 0.0, 3), new=Sample(71.5, 0.0, 3))])[0]
    assert r.verdict == "differs"


# ------------------------------------------------------ the committed quick-start
def _shifted_copy(tmp_path: Path, label: str, points: float) -> Path:
    df = pd.read_csv(QUICKSTART / "leaderboard.csv")
    df.loc[(df.role == "student") & (df.label == label), "top1"] += points
    dst = tmp_path / "rerun"
    dst.mkdir()
    df.to_csv(dst / "leaderboard.csv", index=False)
    return dst


def test_quickstart_against_itself_flags_nothing(capsys):
    rows, metric = compare.compare_paths(QUICKSTART, QUICKSTART / "leaderboard.csv")
    assert metric == "top1" and len(rows) >= 5
    assert not [r for r in rows if r.verdict == "differs"]
    assert main(["compare", str(QUICKSTART), str(QUICKSTART), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "0 differ" in out
    # one line says what 3 seeds can and cannot detect, with the figures the power module gives
    (line,) = [x for x in out.splitlines() if "seeds a side" in x]
    shift = float(re.search(r"a (\d+\.\d+)-point shift", line).group(1))
    typical = Sample(0.0, float(np.median([r.ref.std for r in rows])), 3)
    assert line.startswith("3 seeds a side") and shift == pytest.approx(compare.detectable(typical, typical, 0.05, 5),
                                                                        abs=0.05)
    assert "1-point one" in line and len(line) <= 80


def test_quickstart_kd_shifted_by_six_points(tmp_path, capsys):
    ref, _ = compare.load_runs(QUICKSTART)
    assert ref[ref.label == "kd"].shape[0] >= 3   # the committed quick-start has 3 seeds (issue 13)
    rows, _ = compare.compare_paths(QUICKSTART, _shifted_copy(tmp_path, "kd", 6.0))
    assert {r.label for r in rows if r.verdict == "differs"} == {"kd"}
    assert main(["compare", str(QUICKSTART), str(tmp_path / "rerun"), "--strict"]) == 1


def test_compare_cli_strict_and_errors(tmp_path, capsys):
    # a shift far outside every row's spread: differs for that row only, exit 1 only with --strict
    new = _shifted_copy(tmp_path, "dkd", 6.0)
    assert main(["compare", str(QUICKSTART), str(new)]) == 0
    out = capsys.readouterr().out
    assert "differs" in out and "1 differ" in out
    assert main(["compare", str(QUICKSTART), str(new), "--strict"]) == 1
    capsys.readouterr()
    assert main(["compare", str(QUICKSTART), str(tmp_path / "nowhere")]) == 2
    assert main(["compare", str(QUICKSTART), str(new), "--tolerance", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "no such file or folder" in err and "--tolerance" in err


# -------------------------------------------------- leaderboard refuses, bench default
def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("runs", ["missing", "empty"])
def test_leaderboard_refuses_a_folder_without_runs(tmp_path, capsys, runs):
    out = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, out)
    if runs == "empty":
        (out / "runs").mkdir()
    before = _digest(out)
    assert main(["leaderboard", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("no run store" in err or "no finished run" in err)
    assert _digest(out) == before


def test_bench_writes_outside_results_by_default():
    from kdzoo.bench.recipe.parse import load_recipe
    from kdzoo.bench.runner import default_out

    for recipe in sorted((ROOT / "recipes").glob("*.yaml")):
        out = default_out(load_recipe(recipe))
        assert out.parts[0] == "runs" and "results" not in out.parts


# ------------------------------------------------------ no machine paths in results/
ABS_PATH = re.compile(r"(?<![\w.~:/-])/(?:home|work|tmp|root|Users|mnt|data|scratch|var|opt|srv|private|media)"
                      r"(?:/[\w.@+-]+)+")


def _strings(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif isinstance(x, str):
        yield x


def test_no_absolute_path_under_results():
    bad = []
    for p in sorted((ROOT / "results").rglob("*")):
        if not p.is_file() or p.suffix not in (".json", ".csv", ".md", ".yaml", ".yml", ".txt", ".jsonl"):
            continue
        text = p.read_text(errors="replace")
        if p.suffix == ".json":
            bad += [f"{p.relative_to(ROOT)}: {s}" for s in _strings(json.loads(text)) if os.path.isabs(s)]
        bad += [f"{p.relative_to(ROOT)}: {m.group(0)}" for m in ABS_PATH.finditer(text)]
    assert not bad, "absolute paths in committed results:\n" + "\n".join(bad[:20])


def test_plan_names_the_sweep_teacher_relative_to_the_output_folder(tmp_path):
    from kdzoo.bench.recipe.parse import load_recipe
    from kdzoo.bench.execution.run import teacher_path
    from kdzoo.bench.plan import expand

    plan = expand(load_recipe(ROOT / "recipes" / "quickstart.yaml"), tmp_path / "out")
    students = [s for s in plan.specs.values() if s.teacher_run]
    assert students and all(s.teacher_ckpt == f"runs/{s.teacher_run}/model.pt" for s in students)
    assert teacher_path(students[0], tmp_path / "out") == str(tmp_path / "out" / students[0].teacher_ckpt)


def test_bench_ends_with_the_comparison_against_its_reference(tmp_path, monkeypatch, capsys):
    from kdzoo.cli.bench import compare_with_reference

    monkeypatch.chdir(tmp_path)
    shutil.copytree(QUICKSTART, tmp_path / "results" / "quickstart")
    rerun = _shifted_copy(tmp_path, "dkd", 6.0)
    compare_with_reference("quickstart", rerun)
    out = capsys.readouterr().out
    assert "reference results/quickstart vs this run" in out and "1 differ" in out
    compare_with_reference("no_such_recipe", rerun)          # no committed reference: nothing printed
    compare_with_reference("quickstart", tmp_path / "results" / "quickstart")   # the reference itself: nothing
    assert capsys.readouterr().out == ""


def test_a_bit_identical_rerun_is_named_so(tmp_path):
    """Same seeds, same values: the statistics still say 'consistent' (three seeds cannot show more), but the
    note and the summary say the rerun is identical; one changed value anywhere in a row removes the mark."""
    rows, _ = compare.compare_paths(QUICKSTART, QUICKSTART)
    assert rows and all(r.identical for r in rows)
    assert all(compare.note(r).startswith("identical, seed by seed") for r in rows)
    assert f"{len(rows)} identical to the reference" in compare.summary_line(rows, 1.0, 0.05)
    df = pd.read_csv(QUICKSTART / "leaderboard.csv")
    first_kd = df.index[(df.label == "kd") & (df.role == "student")][0]
    df.loc[first_kd, "top1"] += 0.01
    (tmp_path / "x").mkdir()
    df.to_csv(tmp_path / "x" / "leaderboard.csv", index=False)
    rows, _ = compare.compare_paths(QUICKSTART, tmp_path / "x")
    assert {r.label for r in rows if not r.identical} == {"kd"}


def test_a_row_run_with_other_settings_is_named_so(tmp_path):
    """A run's hash covers its settings: a row sharing no hash with the reference compares a changed recipe,
    not a rerun, and the note says so; the same hashes (a rerun, however different its values) carry no mark."""
    rows, _ = compare.compare_paths(QUICKSTART, QUICKSTART)
    assert not any(r.other_settings for r in rows)
    df = pd.read_csv(QUICKSTART / "leaderboard.csv")
    kd = (df.label == "kd") & (df.role == "student")
    df.loc[kd, "config_hash"] = [f"{i:016x}" for i in range(int(kd.sum()))]     # e.g. kd at another temperature
    df.loc[(df.label == "ce") & (df.role == "student"), "top1"] += 0.5          # a rerun that moved: no mark
    (tmp_path / "x").mkdir()
    df.to_csv(tmp_path / "x" / "leaderboard.csv", index=False)
    rows, _ = compare.compare_paths(QUICKSTART, tmp_path / "x")
    assert {r.label for r in rows if r.other_settings} == {"kd"}
    kd_row = next(r for r in rows if r.label == "kd")
    assert compare.note(kd_row).startswith("other settings than the reference")
    assert "1 run with other settings than the reference" in compare.summary_line(rows, 1.0, 0.05)


def test_a_row_significant_alone_but_not_over_all_rows_says_so():
    """Its own 95% interval excludes 0 but Holm's correction over 10 rows keeps it: the note gives the p-value and
    why it is no verdict, so the interval and 'consistent' do not read as a contradiction."""
    rows = [Row("t", "s", f"m{i}", "logits", ref=Sample(70.0, 1.0, 5), new=Sample(70.0, 1.0, 5)) for i in range(9)]
    rows.append(Row("t", "s", "kd", "logits", ref=Sample(70.0, 1.0, 5), new=Sample(71.7, 1.0, 5)))
    r = judge(rows)[-1]
    assert r.verdict == "consistent" and r.low > 0 and 0.005 < r.p < 0.05
    assert compare.note(r).startswith(f"p = {r.p:.2g}, not significant over all rows; detects ≥ ")
    assert not compare.note(judge(rows)[0]).startswith("p =")
