"""Leaderboards from a run store: paired statistics, CSV columns and dtypes, statuses kept, rebuild."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from kdzoo.bench import leaderboard
from kdzoo.bench.leaderboard import paired_ci, t_quantile_975
from kdzoo.bench.recipe import load_recipe
from kdzoo.bench.store import RunStore
from kdzoo.bench.sweep import expand

PLUGIN = Path(__file__).with_name("bench_plugin.py")
DESIGN_COLUMNS = ["recipe", "dataset", "teacher", "student", "method", "access", "seed", "top1", "top5",
                  "teacher_top1", "epochs", "train_seconds", "images_per_second", "student_params", "status",
                  "config_hash", "kdzoo_version", "git_commit", "torch_version", "device"]


def test_t_quantiles():
    assert t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile_975(2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile_975(4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile_975(60) == pytest.approx(2.0003, abs=1e-4)
    assert t_quantile_975(1000) == pytest.approx(1.9623, abs=1e-4)


def test_paired_ci_on_known_numbers():
    # differences 1, 2, 4: mean 7/3; sample variance ((1-7/3)^2 + (2-7/3)^2 + (4-7/3)^2) / 2 = 7/3;
    # half width = t(0.975, 2) * sqrt(7/3) / sqrt(3) = 4.302653 * 0.881917 = 3.794583
    mean, low, high, n = paired_ci([1.0, 2.0, 4.0])
    assert n == 3 and mean == pytest.approx(7 / 3)
    assert low == pytest.approx(7 / 3 - 3.794583, abs=1e-5) and high == pytest.approx(7 / 3 + 3.794583, abs=1e-5)
    mean, low, high, n = paired_ci([0.5])
    assert (mean, n) == (0.5, 1) and math.isnan(low) and math.isnan(high)
    assert paired_ci([])[3] == 0


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
    assert summary.loc["kd", "delta_ce"] == pytest.approx(7 / 3)
    assert summary.loc["kd", "delta_ce_low"] == pytest.approx(7 / 3 - 3.794583, abs=1e-5)
    assert summary.loc["kd", "delta_ce_n"] == 3 and math.isnan(summary.loc["kd", "delta_kd"])
    assert summary.loc["my_kd", "n_finished"] == 2 and summary.loc["my_kd", "delta_ce_n"] == 2
    assert summary.loc["my_kd", "delta_ce"] == pytest.approx(((82.5 - 80) + (83 - 81)) / 2)
    assert summary.loc["my_kd", "delta_kd"] == pytest.approx(((82.5 - 81) + (83 - 83)) / 2)
    assert summary.loc["my_kd", "rank"] == 1 and summary.loc["kd", "rank"] == 2 and summary.loc["ce", "rank"] == 3
    assert summary.loc["kd", "published_top1"] == 81.5 and math.isnan(summary.loc["ce", "published_top1"])
    assert summary.loc["my_kd", "statuses"] == "failed:1, finished:2"

    md = paths["markdown"].read_text()
    assert "| tied | `my_kd` |" in md   # 2-3 seeds: nothing is separated after Holm's correction and "Made-up et al. 2024" in md and "published 95.00" in md
    assert "+2.33 [-1.46, +6.13] (n=3)" in md
    assert "## Runs that did not finish" in md and "RuntimeError: out of luck" in md
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leaderboard_plot_shows_each_run_mean_ce_line_and_published(store, monkeypatch):
    """The figure's content, read back from matplotlib before it is closed: every finished seed is a dot at its
    top-1, each method's mean a marker, the student-alone CE mean a dashed line, the published number a cross."""
    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    s, _ = store
    paths = leaderboard.build(s.root)
    (fig,) = figures
    (ax,) = [a for a in fig.axes if a.axison]
    assert "fmnist_mlp → fmnist_cnn_tiny" in ax.get_title() and "teacher 93.00" in ax.get_title()
    row = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert sorted(row) == ["ce", "kd", "my_kd"]
    seeds: dict[float, list[float]] = {}
    crosses = []
    for coll in ax.collections:
        if isinstance(coll, PathCollection):
            for x, y in coll.get_offsets():
                (seeds.setdefault(float(y), []) if coll.get_sizes()[0] == 14 else crosses).append(float(x))
    for label in ("ce", "kd", "my_kd"):
        assert sorted(seeds[row[label]]) == sorted(v for (lb, _), v in TOP1.items() if lb == label), label
    assert crosses == [81.5]
    means = {float(y): float(x) for line in ax.lines if line.get_marker() == "o"
             for x, y in zip(line.get_xdata(), line.get_ydata())}
    assert means[row["ce"]] == pytest.approx(80.0) and means[row["kd"]] == pytest.approx(247 / 3)
    assert means[row["my_kd"]] == pytest.approx(82.75)
    (ce_line,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert list(ce_line.get_xdata()) == [80.0, 80.0]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_ties_by_hand():
    """Paired t-tests over seeds with Holm's correction, on data whose answer is known."""
    from kdzoo.bench import ties
    # per-seed top-1 on 5 seeds: 'big' is 5 points above CE on every seed, 'worse' 4 below,
    # 'same' equals CE up to noise of a few tenths
    noise = [0.0, 0.3, -0.2, 0.1, -0.3]
    vals = {"ce": [70 + n for n in noise], "big": [75 + n + 0.05 * k for k, n in enumerate(noise)],
            "same": [70 + n + e for n, e in zip(noise, [0.4, -0.5, 0.3, -0.2, 0.1])],
            "worse": [66 + n - 0.05 * k for k, n in enumerate(noise)]}

    def marked(vals):
        rows = [{"teacher": "t", "student": "s", "label": m, "access": "logits", "seed": k, "top1": v,
                 "status": "finished"} for m, vs in vals.items() for k, v in enumerate(vs)]
        students = pd.DataFrame(rows)
        means = students.groupby("label").top1.mean()
        summary = pd.DataFrame([{"teacher": "t", "student": "s", "label": m, "access": "logits",
                                 "mean": means[m], "n_finished": len(vals[m])} for m in vals])
        summary["rank"] = summary["mean"].rank(ascending=False, method="min").astype("Int64")
        return ties.mark(summary, students, "top1", "ce").set_index("label")

    out = marked(vals)
    assert out.loc["big", "vs_ce"] == "better" and out.loc["worse", "vs_ce"] == "worse"
    assert out.loc["same", "vs_ce"] == "tied" and out.loc["ce", "vs_ce"] == "—"
    assert out.loc["big", "rank_shown"] == "1" and out.loc["worse", "rank_shown"] == "4"
    assert out.loc["ce", "rank_shown"] == "tied" and out.loc["same", "rank_shown"] == "tied"
    assert out.loc["ce", "tied_with"] == "same" and out.loc["big", "tied_with"] == ""
    # a method with one seed cannot be placed: no rank is supported while it is on the board
    out = marked({**vals, "few": [90.0]})
    assert set(out.rank_shown) == {"tied"} and out.loc["big", "vs_ce"] == "better"
    # paired p by hand, df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2); diffs 1, 2, 4 give t = sqrt(7)
    assert ties.paired_p([1.0, 2.0, 4.0]) == pytest.approx(1 - 7 ** 0.5 / 3, rel=1e-9)
