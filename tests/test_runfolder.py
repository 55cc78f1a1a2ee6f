"""A run folder is never resumed or rewritten with other settings than it was made with (issue 16, item 1)."""
from __future__ import annotations

import json
from pathlib import Path


from kdzoo.engine.runfolder import differences

from conftest import needs_fmnist, kdzoo_main as main

PLUGIN = Path(__file__).with_name("bench_plugin.py")


def _files(folder: Path) -> dict[str, bytes]:
    # .lock is the store's own bookkeeping (who holds the run), not the run's
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_differences_names_each_setting():
    old = {"student": "a", "train": {"epochs": 1, "lr": 0.1}}
    new = {"student": "a", "train": {"epochs": 2, "lr": 0.1}, "label": "x"}
    assert differences(old, new) == "label (unset) -> x, epochs 1 -> 2"
    assert differences(old, old) == ""


@needs_fmnist
def test_train_refuses_to_extend_a_run_with_other_settings(capsys, tmp_path):
    out = tmp_path / "run"
    common = ["train", "--student", "fmnist_cnn_tiny", "--method", "ce", "--steps-per-epoch", "2", "--out", str(out),
              "--no-progress"]
    assert main([*common, "--epochs", "1"]) == 0
    before = _files(out)
    capsys.readouterr()
    rc = main([*common, "--epochs", "2", "--lr", "0.1"])
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert "other settings (epochs 1 -> 2, lr 0.05 -> 0.1)" in line and "another output folder" in line
    assert _files(out) == before                       # nothing resumed, nothing rewritten
    # the same settings again: accepted (the finished run is simply reported)
    assert main([*common, "--epochs", "1"]) == 0


def test_bench_refuses_a_teacher_folder_made_with_other_settings(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""\
name: refuse
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16, steps_per_epoch: 2}}}}
pairs: [{{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}]
methods: [kd]
seeds: [0]
train: {{epochs: 1, batch_size: 16, steps_per_epoch: 2}}
""")
    out = tmp_path / "out"
    assert main(["bench", str(recipe), "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    plan = json.loads((out / "plan.json").read_text())
    teacher = next(e["hash"] for e in plan["entries"] if e["role"] == "teacher")
    folder = out / "runs" / teacher
    # the teacher's run is unfinished and its folder records another schedule (e.g. copied from elsewhere)
    (folder / "result.json").unlink()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["train"]["epochs"] = 5
    (folder / "config.json").write_text(json.dumps(cfg))
    before = _files(folder)
    capsys.readouterr()
    rc = main(["bench", str(recipe), "--out", str(out), "--no-progress", "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert str(folder) in line and "other settings (epochs 5 -> 1)" in line
    assert _files(folder) == before
