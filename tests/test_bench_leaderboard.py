"""Leaderboards from a run store: paired statistics, CSV columns and dtypes, statuses kept, rebuild."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from kdzoo.bench.report import leaderboard, leaderboard_md
from kdzoo.bench.report.leaderboard import paired_ci
from kdzoo.bench.recipe.parse import load_recipe
from kdzoo.bench.execution.store import RunStore
from kdzoo.bench.plan import expand

PLUGIN = Path(__file__).with_name("bench_plugin.py")
DESIGN_COLUMNS = ["recipe", "dataset", "teacher", "student", "method", "access", "seed", "top1", "top5",
                  "teacher_top1", "epochs", "train_seconds", "images_per_second", "student_params", "status",
                  "config_hash", "kdzoo_version", "git_commit", "torch_version", "device"]


def test_paired_ci_is_the_statistics_one():
    # kept importable here for scripts beside the results (results/b2kd_fashion_mnist/summarize.py)
    mean, low, high, n = paired_ci([1.0, 2.0, 4.0])
    assert (mean, n) == (pytest.approx(7 / 3), 3) and high - mean == pytest.approx(3.794583, abs=1e-5)


RECIPE = f"""\
name: fake
description: a store filled by hand
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 2}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
methods: [ce, kd, my_kd]
seeds: [0, 1, 2]
train: {{epochs: 2}}
reference:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny, method: kd, top1: 81.5, source: "Made-up et al. 2024"}}
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny, method: teacher, top1: 95.0, source: "Made-up et al. 2024"}}
"""

# top-1 per (label, seed); ce -> kd differences are 1, 2, 4 (the CI above)
TOP1 = {("ce", 0): 80.0, ("ce", 1): 81.0, ("ce", 2): 79.0,
        ("kd", 0): 81.0, ("kd", 1): 83.0, ("kd", 2): 83.0,
        ("my_kd", 0): 82.5, ("my_kd", 1): 83.0}          # seed 2 of my_kd: failed


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "fake.yaml"
    path.write_text(RECIPE)
    plan = expand(load_recipe(path), tmp_path / "out")
    s = RunStore(tmp_path / "out")
    s.write_plan(plan.to_dict())
    for e in plan.entries:
        base = {"config_hash": e.hash, "kdzoo_version": "0.1.0", "git_commit": "abc1234", "torch_version": "2.x",
                "device": "cpu", "epochs": 2, "train_seconds": 1.5, "images_per_second": 100.0,
                "student_params": 1442, "best_epoch": 2}
        if e.role == "teacher":
            s.write_result(e.hash, {**base, "status": "finished", "top1": 93.0, "top5": 99.0, "best_top1": 93.0,
                                    "teacher_top1": float("nan")})
        elif (e.label, e.seed) in TOP1:
            t1 = TOP1[(e.label, e.seed)]
            s.write_result(e.hash, {**base, "status": "finished", "top1": t1, "top5": 99.0, "best_top1": t1 + 0.5,
                                    "teacher_top1": 93.0 if e.access != "none" else float("nan"),
                                    "teacher_queries": 64 * (e.access != "none")})
        else:
            s.write_result(e.hash, {**base, "status": "failed", "message": "RuntimeError: out of luck",
                                    "epochs": 0})
    return s, plan


def test_leaderboard_outputs(store):
    s, plan = store
    paths = leaderboard.build(s.root)
    df = pd.read_csv(paths["csv"])
    for col in DESIGN_COLUMNS + ["best_top1", "best_epoch", "teacher_queries", "label"]:
        assert col in df.columns, col
    assert len(df) == 1 + 3 * 3
    for col in ("top1", "top5", "best_top1", "teacher_top1", "train_seconds", "images_per_second"):
        assert pd.api.types.is_float_dtype(df[col]), col
    for col in ("seed", "epochs", "best_epoch", "teacher_queries"):
        assert pd.api.types.is_integer_dtype(df[col]), col
    assert pd.api.types.is_numeric_dtype(df.student_params)
    failed = df[df.status == "failed"]
    assert len(failed) == 1 and failed.label.iloc[0] == "my_kd" and failed.seed.iloc[0] == 2
    assert failed.message.iloc[0] == "RuntimeError: out of luck" and math.isnan(failed.top1.iloc[0])
    assert (df[df.role == "student"].teacher_top1 == 93.0).all()   # also on the student-alone rows

    summary = pd.read_csv(paths["summary"]).set_index("label")
    assert summary.loc["ce", "mean"] == pytest.approx(80.0) and summary.loc["ce", "std"] == pytest.approx(1.0)
    # kd and ce have every seed: their seed-adjusted difference is the difference of their means
    assert summary.loc["kd", "delta_ce"] == pytest.approx(7 / 3)
    assert summary.loc["kd", "delta_ce_low"] < 7 / 3 < summary.loc["kd", "delta_ce_high"]
    assert summary.loc["kd", "delta_ce_n"] == 3 and math.isnan(summary.loc["kd", "delta_kd"])
    assert summary.loc["my_kd", "n_finished"] == 2 and summary.loc["my_kd", "delta_ce_n"] == 2
    assert summary.loc["my_kd", "n_kept"] == 2 and summary.loc["my_kd", "n_collapsed"] == 0
    for label, row in summary.iterrows():   # every verdict is the sign of the interval printed beside it
        if label != "ce":
            want = "better" if row.delta_ce_low > 0 else "worse" if row.delta_ce_high < 0 else "tied"
            assert row.vs_ce == want, label
            assert row.rank_low <= row["rank"] <= row.rank_high
    assert summary.loc["my_kd", "rank"] == 1 and summary.loc["kd", "rank"] == 2 and summary.loc["ce", "rank"] == 3
    assert summary.loc["kd", "published_top1"] == 81.5 and math.isnan(summary.loc["ce", "published_top1"])
    assert summary.loc["my_kd", "statuses"] == "failed:1, finished:2"

    md = paths["markdown"].read_text()
    assert "| `my_kd` |" in md and "Made-up et al. 2024" in md and "published 95.00" in md
    assert "best test epoch (papers' protocol, optimistic)" in md    # beside the published numbers only
    row = summary.loc["kd"]
    assert f"{row.delta_ce:+.2f} [{row.delta_ce_low:+.2f}, {row.delta_ce_high:+.2f}]" in md
    assert "## Runs that did not finish" in md and "RuntimeError: out of luck" in md
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_plot_shows_delta_vs_ce_with_its_interval_and_verdict(store):
    """The figure's content, read from the matplotlib figure: one panel per pair, one row per method, each
    method but CE an interval (its simultaneous interval of Δ vs CE, coloured by its verdict), CE a diamond at
    0, a dashed line at 0, a legend naming the verdicts."""
    from matplotlib.colors import to_hex

    from kdzoo.bench.report.leaderboard_plot import COLORS, figure
    s, plan = store
    leaderboard.build(s.root)
    df = leaderboard.read_rows(s.root)
    summary = pd.read_csv(s.root / "summary.csv", keep_default_na=False, na_values=[""])
    fig = figure(plan, df, summary)
    (ax,) = [a for a in fig.axes if a.axison]
    assert "fmnist_mlp → fmnist_cnn_tiny" in ax.get_title() and "teacher 93.00" in ax.get_title()
    assert "Δ vs CE" in ax.get_xlabel() and "simultaneous 95%" in ax.get_xlabel()
    row = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert sorted(row) == ["ce", "kd", "my_kd"]
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 2
    s_ = summary.set_index("label")
    for bar in bars:
        (x,), (y,) = bar.lines[0].get_data()
        label = next(k for k, v in row.items() if v == y)
        assert x == pytest.approx(s_.loc[label, "delta_ce"])
        (segs,) = [c for c in bar.lines[2]]
        (lo, _), (hi, _) = segs.get_segments()[0]
        assert (lo, hi) == (pytest.approx(s_.loc[label, "delta_ce_low"]), pytest.approx(s_.loc[label, "delta_ce_high"]))
        assert to_hex(bar.lines[0].get_color()) == to_hex(COLORS[s_.loc[label, "vs_ce"]])
    (diamond,) = [ln for ln in ax.lines if ln.get_marker() == "D"]
    assert list(diamond.get_xdata()) == [0.0] and list(diamond.get_ydata()) == [row["ce"]]
    assert [ln.get_xdata()[0] for ln in ax.lines if ln.get_linestyle() == "--"] == [0.0]
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"better", "worse", "tied"}
    plt.close(fig)


def test_pending_runs_are_listed_and_cli_rebuilds(store, capsys):
    from conftest import kdzoo_main as main
    s, plan = store
    missing = [e for e in plan.entries if e.label == "kd" and e.seed == 1][0].hash
    s.clear_result(missing)
    assert main(["leaderboard", str(s.root)]) == 0
    out = capsys.readouterr().out
    assert "leaderboard.md" in out
    df = pd.read_csv(s.root / "leaderboard.csv")
    assert df.set_index("config_hash").loc[missing, "status"] == "pending"
    summary = pd.read_csv(s.root / "summary.csv").set_index("label")
    assert summary.loc["kd", "n_finished"] == 2 and summary.loc["kd", "delta_ce_n"] == 2


def test_leaderboard_of_a_folder_without_plan(tmp_path, capsys):
    from conftest import kdzoo_main as main
    assert main(["leaderboard", str(tmp_path)]) == 2
    assert "holds no plan.json" in capsys.readouterr().err




QUICKSTART = Path(__file__).resolve().parents[1] / "results" / "quickstart"
B2KD = Path(__file__).resolve().parents[1] / "results" / "b2kd_fashion_mnist"


def _copy_rows(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("plan.json", "leaderboard.csv"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_from_rows_rebuilds_the_tables_and_never_writes_the_rows(store, tmp_path, capsys):
    """A folder holding only plan.json and leaderboard.csv (a committed reference): --from-rows writes
    summary.csv, leaderboard.md and leaderboard.png, the same as from the run store, and leaves leaderboard.csv
    byte for byte; without --from-rows the folder is refused."""
    from conftest import kdzoo_main as main
    s, _ = store
    leaderboard.build(s.root, classes=10)
    rows_only = _copy_rows(s.root, tmp_path / "ref")
    before = (rows_only / "leaderboard.csv").read_bytes()
    assert main(["leaderboard", str(rows_only)]) == 2
    assert "--from-rows" in capsys.readouterr().err
    assert main(["leaderboard", str(rows_only), "--from-rows", "--classes", "10"]) == 0
    assert (rows_only / "leaderboard.csv").read_bytes() == before
    pd.testing.assert_frame_equal(pd.read_csv(rows_only / "summary.csv"), pd.read_csv(s.root / "summary.csv"))
    assert (rows_only / "leaderboard.md").read_text() == (s.root / "leaderboard.md").read_text()
    assert (rows_only / "leaderboard.png").is_file() and not (rows_only / "curves.png").exists()
    assert main(["leaderboard", str(rows_only), "--from-rows", "--classes", "1"]) == 2


def test_a_collapsed_seed_is_named_and_left_out(tmp_path):
    """One quick-start seed of kd at chance: the row says 'collapsed 1/3 (10.00)', its mean is over the other
    two seeds, and its verdict is made on them."""
    ref = _copy_rows(QUICKSTART, tmp_path / "qs")
    df = pd.read_csv(ref / "leaderboard.csv")
    hit = (df.label == "kd") & (df.seed == 1)
    kept = df[(df.label == "kd") & (df.seed != 1)].top1
    df.loc[hit, "top1"] = 10.0
    df.to_csv(ref / "leaderboard.csv", index=False)
    paths = leaderboard.build_from_rows(ref, classes=10)
    summary = pd.read_csv(paths["summary"]).set_index("label")
    assert summary.loc["kd", "n_collapsed"] == 1 and summary.loc["kd", "n_kept"] == 2
    assert summary.loc["kd", "mean"] == pytest.approx(kept.mean())
    assert summary.loc["kd", "mean_all"] == pytest.approx((kept.sum() + 10.0) / 3)
    md = paths["markdown"].read_text()
    assert "| 2/3, collapsed 1/3 (10.00) |" in md and "23.50% top-1" in md


def test_black_box_layout_pseudo_label_ce_and_kd_per_access():
    """The b2kd tables: no 'ce' label (CE on the teacher's labels, 'ce-pseudo', is the reference), methods at
    two access levels, KD at each: mekd-hard (label access) is compared with kd-label, mekd-soft (probs) with
    kd-probs; the KD references themselves show none."""
    plan = leaderboard.load_plan(B2KD)
    summary = leaderboard.summarize(plan, leaderboard.read_rows(B2KD), classes=10).set_index("label")
    assert summary.loc["ce-pseudo", "vs_ce"] == "—" and summary.loc["kd-probs", "vs_ce"] in ("better", "worse", "tied")
    for label, ref in (("mekd-hard", "kd-label"), ("mekd-soft", "kd-probs"), ("ce-pseudo", "kd-label")):
        assert summary.loc[label, "delta_kd"] == pytest.approx(summary.loc[label, "mean"] - summary.loc[ref, "mean"])
        assert summary.loc[label, "delta_kd_low"] < summary.loc[label, "delta_kd"] < summary.loc[label, "delta_kd_high"]
    assert math.isnan(summary.loc["kd-label", "delta_kd"]) and math.isnan(summary.loc["kd-probs", "delta_kd"])


def test_best_epoch_on_validation_is_shown_and_can_be_ranked(store, tmp_path):
    """Runs with a validation split: the table adds the test top-1 at the best-validation epoch; a plan ranked on
    it shows the last epoch beside it. The best test epoch appears only beside published numbers."""
    s, plan = store
    leaderboard.build(s.root, classes=10)
    df = leaderboard.read_rows(s.root)
    df["top1_at_best_val"] = df.top1 - 0.25
    md = leaderboard_md.markdown(plan, df, leaderboard.summarize(plan, df))
    assert "| top-1 at best-val epoch |" in md and "last-epoch top-1 (ranked)" in md
    plan.metric = "top1_at_best_val"
    summary = leaderboard.summarize(plan, df)
    assert summary.set_index("label").loc["ce", "mean"] == pytest.approx(80.0 - 0.25)
    md = leaderboard_md.markdown(plan, df, summary)
    assert "top-1 at best-val epoch (ranked)" in md and "| last-epoch top-1 |" in md
    plan.metric, plan.reference = "best_top1", []     # a plan written before best_top1 was refused
    md = leaderboard_md.markdown(plan, df, leaderboard.summarize(plan, df))
    assert "ranked on the last epoch instead" in md and "best test epoch" not in md


def test_committed_tables_never_contradict_themselves():
    """Every committed summary built with the current statistics: each vs-CE verdict is the sign of the interval
    printed beside it, no method is both better (or worse) than CE and tied with it, and a method's rank interval
    holds its point rank. (Tables built before these statistics, with no n_kept column, wait for their rerun.)"""
    checked = 0
    for path in sorted((Path(__file__).resolve().parents[1] / "results").glob("*/summary.csv")):
        summary = pd.read_csv(path, keep_default_na=False, na_values=[""])
        if "n_kept" not in summary.columns:
            continue
        for _, row in summary.iterrows():
            checked += 1
            if row.delta_ce == row.delta_ce:
                want = "better" if row.delta_ce_low > 0 else "worse" if row.delta_ce_high < 0 else "tied"
                assert row.vs_ce == want, (path, row.label)
                ce = summary[(summary.teacher == row.teacher) & (summary.student == row.student)
                             & (summary.vs_ce == "—") & summary.delta_ce.isna() & (summary.outcome == "tested")]
                tied = str(row.tied_with or "").split("; ")
                assert (row.vs_ce == "tied") == any(c in tied for c in ce.label), (path, row.label)
            if row["rank"] == row["rank"]:
                assert row.rank_low <= row["rank"] <= row.rank_high, (path, row.label)
    assert checked >= 5 + 47
