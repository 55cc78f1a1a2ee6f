"""``kdzoo report``: the numbers and runs in report.html are those of the leaderboard files, the page loads
nothing from the network, shows columns it does not know, and is the same for the same files. (The browser
itself is in test_report_browser.py.)"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

from conftest import unwrapped
from report_html import bokeh_sources, read

pytest.importorskip("bokeh", reason="bokeh not installed (pip install 'kdzoo[report]')")

from kdzoo.errors import ConfigError  # noqa: E402
from kdzoo.report import check_installed, write_report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results"
PLUGIN = Path(__file__).with_name("bench_plugin.py")
# what a committed report may weigh: BokehJS alone is 1.27 MB; the tuned Fashion-MNIST one (470 runs' curves) 2.85 MB
MAX_BYTES = 3_000_000


def copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(RESULTS / name, dst, ignore=shutil.ignore_patterns("report.html", "*.png"))
    return dst


def f2(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


def check_against_files(folder: Path) -> None:
    """Every leaderboard row, run and curve of the page against summary.csv, leaderboard.csv and curves.csv."""
    text, page = read(folder / "report.html")
    summary, runs = pd.read_csv(folder / "summary.csv"), pd.read_csv(folder / "leaderboard.csv")
    boards = [t for t in page.tables if "data-pair" in t["attrs"]]
    assert len(boards) == summary.groupby(["teacher", "student"]).ngroups
    seen = 0
    for t in boards:
        teacher, student = t["attrs"]["data-pair"].split("|")
        g = summary[(summary.teacher == teacher) & (summary.student == student)]
        shown = page.records(t)
        assert len(shown) == len(g)
        for row in shown:
            r = g[(g.label == row["method"]) & (g.access == row["access"])]
            assert len(r) == 1, row
            r = r.iloc[0]
            top1 = next(v for k, v in row.items() if k.startswith("last-epoch top-1"))
            assert top1 == f2(r.top1_mean) + (f" ± {f2(r.top1_std)}" if r.top1_std == r.top1_std else "")
            for ref in ("ce", "kd"):
                delta, low, high = (r[f"delta_{ref}{s}"] for s in ("", "_low", "_high"))
                shown = row[f"Δ vs {ref.upper()} [95% CI]"]
                assert shown.split(" ")[0] == ("—" if delta != delta else f"{delta:+.2f}")
                if low == low:
                    assert f"[{low:+.2f}, {high:+.2f}]" in shown
            assert row["vs CE"] == (str(r.vs_ce) if isinstance(r.vs_ce, str) else "—")
            assert row["finished"] == f"{int(r.n_finished)}/{int(r.n_seeds)}"
            assert row["rank"] == (str(r.rank_shown) if isinstance(r.rank_shown, str) else "—")
            if "n_kept" in summary:      # the statistics of kdzoo.stats: verdicts vs KD, seeds kept and collapsed
                assert row["vs KD"] == (str(r.vs_kd) if isinstance(r.vs_kd, str) else "—")
                collapsed = f", {r.collapsed}" if isinstance(r.collapsed, str) else ""
                assert row["seeds"] == f"{int(r.n_kept)}/{int(r.n_seeds)}{collapsed}"
            seen += 1
    assert seen == len(summary)
    listed = page.records(page.table(**{"class": "sortable filterable runs"})[0])
    assert len(listed) == len(runs)
    assert [(x["run hash"], x["seed"], x["top-1"], x["status"]) for x in listed] == [
        (r.config_hash, str(int(r.seed)), f2(r.top1), r.status) for r in runs.itertuples()]
    curves = pd.read_csv(folder / "curves.csv")
    drawn = bokeh_sources(text)
    for (teacher, student, label, access), g in curves.groupby(["teacher", "student", "label", "access"]):
        data = drawn[f"curve|{teacher}|{student}|{label}|{access}"]
        mean = g.groupby("epoch").test_top1.mean()
        assert data["epoch"] == [int(e) for e in mean.index]
        assert data["y"] == pytest.approx(list(mean.values))
        assert data["hi"] == pytest.approx(list(g.groupby("epoch").test_top1.max().values))


@pytest.mark.parametrize("name", ["quickstart", "b2kd_fashion_mnist"])
def test_committed_results_report_their_files(name, tmp_path):
    folder = copy(name, tmp_path)
    path = write_report(folder, reference=None)
    assert path == folder / "report.html" and path.stat().st_size < MAX_BYTES
    check_against_files(folder)
    text, page = read(path)
    assert page.loads == [], "the page must load nothing: every asset is inline"
    assert "<script src" not in text and "<link" not in text
    expected = {"leaderboard", "curves", "runs", "provenance"} | ({"queries"} if name.startswith("b2kd") else set())
    assert set(page.sections) == expected
    assert (folder / "PROVENANCE.md").read_text().splitlines()[0] in text


def test_queries_plot_is_the_csv(tmp_path):
    folder = copy("b2kd_fashion_mnist", tmp_path)
    q = pd.read_csv(folder / "b2kd_queries.csv")
    if "pool" not in q:   # a reference written before pools: give mekd-soft pooled rows of its own
        q["pool"] = 0
        extra = q[q.label == "mekd-soft"].assign(pool=6000, teacher_queries=lambda d: d.teacher_queries // 2,
                                                  top1=lambda d: d.top1 - 1)
        q = pd.concat([q, extra], ignore_index=True)
        q.to_csv(folder / "b2kd_queries.csv", index=False)
    assert (q.pool > 0).any()
    text, _ = read(write_report(folder, reference=None))
    q = q[(q.study == "queries") & (q.status == "finished")]
    # a pooled generator method is its own series, apart from its every-step runs
    q = q.assign(label=[f"{lb}, pool" if p == p and p > 0 else lb for lb, p in zip(q.label, q["pool"])])
    drawn = bokeh_sources(text)
    for (label, access), g in q.groupby(["label", "access"]):
        by = g.groupby("teacher_queries").top1
        data = drawn[f"queries|{label}|{access}"]
        assert data["queries"] == [int(x) for x in by.mean().index]
        assert data["y"] == pytest.approx(list(by.mean().values))
        assert data["seeds"] == [int(n) for n in by.count().values]


def test_reference_comparison_is_kdzoo_compare(tmp_path):
    from kdzoo.bench.report import compare

    folder = copy("quickstart", tmp_path)
    _, page = read(write_report(folder, reference=RESULTS / "quickstart"))
    assert "reference" in page.sections
    rows, _ = compare.compare_paths(RESULTS / "quickstart", folder)
    table = [t for t in page.tables if t["headers"] and t["headers"][0] == list(compare.HEADER)]
    assert len(table) == 1 and table[0]["rows"] == [[c if c else "—" for c in r] for r in compare.table_rows(rows)]


def test_new_and_unknown_columns_are_shown(tmp_path):
    """A statistics column the adapter names (vs KD, seeds with the collapsed ones, the rank interval in the rank
    column) appears once summary.csv has it and is left out of one written before it; a column it does not
    know is shown under its CSV name; a tuned recipe's figure and table get a section."""
    folder = copy("quickstart", tmp_path)
    s = pd.read_csv(folder / "summary.csv")
    s.drop(columns=["vs_kd", "n_kept", "n_collapsed", "collapsed", "rank_shown"]).to_csv(folder / "summary.csv",
                                                                                      index=False)
    _, page = read(write_report(folder, reference=None))
    board = page.records(next(t for t in page.tables if "data-pair" in t["attrs"]))
    assert "vs KD" not in board[0] and "seeds" not in board[0]
    assert [r["rank"] for r in board] == [str(x) for x in s.sort_values("rank")["rank"]]   # the point ranks
    s["collapsed"] = ["", "collapsed 1/3 (10.00)", "", "", ""]
    s["new_statistic"] = [0, 1, 0, 0, 2]
    s.to_csv(folder / "summary.csv", index=False)
    (folder / "tuning").mkdir()
    shutil.copy(RESULTS / "quickstart" / "leaderboard.png", folder / "tuning" / "best_so_far.png")
    pd.DataFrame({"label": ["kd"], "trial": [3], "val_top1": [80.5]}).to_csv(folder / "tuning_trials.csv",
                                                                           index=False)
    text, page = read(write_report(folder, reference=None))
    board = page.records(next(t for t in page.tables if "data-pair" in t["attrs"]))
    by_method = {r["method"]: r for r in board}
    for row in s.itertuples():
        shown = by_method[row.label]
        assert shown["rank"] == row.rank_shown and "–" in shown["rank"] and shown["vs KD"] == row.vs_kd
        assert shown["seeds"] == f"{row.n_kept}/{row.n_seeds}" + (f", {row.collapsed}" if row.collapsed else "")
        assert shown["new_statistic"] == f"{row.new_statistic:.2f}"
    assert "rank_low" not in board[0] and "outcome" not in board[0]      # shown in the rank and seeds columns
    assert "tuning" in page.sections and len(page.images) == 1
    assert any(t["headers"] and t["headers"][0] == ["label", "trial", "val_top1"] for t in page.tables)


def test_same_files_same_page(tmp_path, run_cli):
    folder = copy("quickstart", tmp_path)
    first = run_cli("report", str(folder), "--output", str(tmp_path / "a.html"))
    second = run_cli("report", str(folder), "--output", str(tmp_path / "b.html"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert unwrapped("MB; opens offline") in unwrapped(first.stdout)     # a long path wraps the line
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_bench_ends_with_a_report_of_its_runs(tmp_path, run_cli):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""\
name: tiny
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
methods: [ce, kd]
seeds: [0, 1]
train: {{epochs: 2, batch_size: 16}}
""")
    proc = run_cli("bench", str(recipe), "--out", str(tmp_path / "out"), "--workers", "1", "--no-progress",
                   env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert unwrapped(str(tmp_path / "out" / "report.html")) in unwrapped(proc.stdout)   # a long path is folded
    check_against_files(tmp_path / "out")


def test_errors_are_one_line(tmp_path, monkeypatch, run_cli):
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "plan.json" in proc.stderr
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bokeh" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'kdzoo\[report\]'"):
        check_installed()


def test_committed_reports_are_current():
    """results/*/report.html were written from the files beside them (regenerate: scripts/report_screenshots.py
    --write)."""
    reports = sorted(RESULTS.glob("*/report.html"))
    assert {p.parent.name for p in reports} >= {"quickstart", "fashion_mnist", "b2kd_fashion_mnist",
                                                 "b2kd_fashion_mnist_shift"}
    for report in reports:
        _, page = read(report)
        assert page.loads == [] and len(report.read_bytes()) < MAX_BYTES
        summary = pd.read_csv(report.parent / "summary.csv")
        shown = {(*t["attrs"]["data-pair"].split("|"), r["method"], r["access"]):
                 next(v for k, v in r.items() if k.startswith("last-epoch"))
                 for t in page.tables if "data-pair" in t["attrs"] for r in page.records(t)}
        assert sorted(shown) == sorted(zip(summary.teacher, summary.student, summary.label, summary.access)), report
        for r in summary.itertuples():
            assert shown[(r.teacher, r.student, r.label, r.access)].startswith(f2(r.top1_mean)), (report, r.label)
