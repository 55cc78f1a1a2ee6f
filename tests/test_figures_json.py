"""Figures tested by what they show, and files any JSON parser reads (issue 25, item 9; issue 22, item 5).

curves.png: small multiples (one cell per method, found by its title, no shared 24-entry legend), the loss
relative to each method's first epoch (comparable across methods), integer epoch ticks. Every JSON file
a sweep and ``kdzoo train`` write parses with a strict parser (null, not NaN)."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from kdzoo.bench.report.curves import figure, relative_loss
from kdzoo.bench.plan import Plan, PlanEntry

from conftest import kdzoo_main

matplotlib.use("Agg")
PLUGIN = Path(__file__).with_name("bench_plugin.py")


def _curves(methods: list[str], epochs: int = 2) -> tuple[Plan, pd.DataFrame]:
    """Two seeds per method; method i's loss is (i + 1) * 10 at epoch 1 and falls by a known factor."""
    entries, rows = [], []
    for i, method in enumerate(methods):
        for seed in (0, 1):
            access = "none" if method == "ce" else "logits"
            entries.append(PlanEntry("student", "t", "fmnist_teacher", "fmnist_cnn_tiny", method, method, access,
                                     seed, f"{method}{seed}"))
            for epoch in range(1, epochs + 1):
                rows.append({"teacher": "t", "teacher_model": "fmnist_teacher", "student": "fmnist_cnn_tiny",
                             "label": method, "access": access, "seed": seed, "epoch": epoch,
                             "test_top1": 50.0 + i + 10 * epoch + seed,          # seeds 1 point apart
                             "train_loss": (i + 1) * 10.0 / (epoch * (1 + seed))})  # seed 1 falls faster
    return Plan("r", "", "fashion-mnist", "top1", entries, {}), pd.DataFrame(rows)


def _cells(fig) -> dict[str, tuple]:
    """Method title -> (top-1 axes, loss axes below it)."""
    axes = [ax for ax in fig.get_axes() if ax.axison]
    tops = {ax.get_title(): ax for ax in axes if ax.get_title()}
    below = {}
    for title, top in tops.items():
        bottom = next(ax for ax in axes if not ax.get_title() and ax.get_shared_x_axes().joined(ax, top))
        below[title] = (top, bottom)
    return below


def _line(ax, label: str):
    return next(line for line in ax.get_lines() if line.get_label() == label)


def test_loss_relative_to_each_runs_first_epoch():
    _, df = _curves(["ce", "kd"], epochs=3)
    rel = df.assign(r=relative_loss(df))
    kd1 = rel[(rel.label == "kd") & (rel.seed == 1)].sort_values("epoch").r.tolist()
    assert kd1 == pytest.approx([1.0, 0.5, 1 / 3])           # 10 / (e * 2) over 10 / 2: the scale is gone


def test_curves_show_each_method_in_its_own_cell_with_comparable_loss_and_integer_epochs():
    plan, df = _curves(["ce", "kd", "dkd"], epochs=2)
    fig = figure(plan, df)
    cells = _cells(fig)
    assert set(cells) == {"ce (n=2)", "kd (n=2)", "dkd (n=2)"}
    top, bottom = cells["dkd (n=2)"]
    # dkd is method 2: top-1 = 52 + 10 * epoch + seed, mean over seeds 0 and 1 -> 62.5, 72.5
    assert list(_line(top, "dkd").get_ydata()) == pytest.approx([62.5, 72.5])
    assert list(_line(top, "ce").get_ydata()) == pytest.approx([60.5, 70.5]) and _line(top, "ce").get_linestyle() == "--"
    # loss relative to epoch 1: seed 0 -> 1, 1/2; seed 1 -> 1, 1/2 (30/2e over 30/2); the mean: 1, 0.5
    assert list(_line(bottom, "dkd").get_ydata()) == pytest.approx([1.0, 0.5])
    assert bottom.get_ylabel() == "" and cells["ce (n=2)"][1].get_ylabel() == "loss / epoch 1"
    fig.canvas.draw()
    for ax in fig.get_axes():
        if ax.axison:
            assert all(float(t).is_integer() for t in ax.get_xticks()), ax.get_xticks()   # epochs 1, 2; no 1.5
    assert "fmnist_teacher → fmnist_cnn_tiny" in [s._suptitle.get_text() for s in fig.subfigs]
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_24_methods_are_24_cells_without_a_shared_legend():
    methods = ["ce"] + [f"m{i:02d}" for i in range(23)]
    plan, df = _curves(methods, epochs=3)
    fig = figure(plan, df)
    cells = _cells(fig)
    assert set(cells) == {f"{m} (n=2)" for m in methods}
    assert all(ax.get_legend() is None for ax in fig.get_axes()) and not fig.legends
    import matplotlib.pyplot as plt
    plt.close(fig)


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_every_json_a_sweep_and_a_train_run_write_parses_strictly(tmp_path, capsys):
    recipe = tmp_path / "j.yaml"
    recipe.write_text(f"""\
name: j
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16}}}}
pairs: [{{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}]
methods: [ce, kd]
seeds: [0, 1]
train: {{epochs: 2, batch_size: 16}}
""")
    out = tmp_path / "out"
    assert kdzoo_main(["bench", str(recipe), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    teacher = out / "runs" / next(e["hash"] for e in plan["entries"] if e["role"] == "teacher") / "model.pt"
    assert kdzoo_main(["train", "--dataset", "bench-synth", "--student", "fmnist_cnn_tiny", "--teacher-ckpt",
                       str(teacher), "--teacher", "fmnist_mlp", "--epochs", "1", "--batch-size", "16", "--out",
                       str(tmp_path / "single"), "--no-progress"]) == 0
    capsys.readouterr()
    files = sorted(tmp_path.rglob("*.json")) + sorted(tmp_path.rglob("*.jsonl"))
    names = {p.name for p in files}
    assert {"plan.json", "config.json", "result.json", "metrics.jsonl"} <= names
    nulls = 0
    for path in files:
        text = path.read_text()
        for line in (text.splitlines() if path.suffix == ".jsonl" else [text]):
            record = _strict(line)
            nulls += isinstance(record, dict) and record.get("val_top1", 0) is None
    assert nulls > 0      # no validation split: val_top1 is null (was a bare NaN)
    result = _strict((tmp_path / "single" / "result.json").read_text())
    assert result["val_top1"] is None and result["status"] == "finished"
