"""The store reports only numbers that are its own: a checkpoint or result from another run, an edited
result, a swapped model.pt or teacher file, a checkpoint of another architecture, and small damage
(a file where a run folder belongs, an unreadable config.json) are found, named with the run and
the file, and redone; never reported as they are, and never a reason to stop the other runs.

A small sweep (tests/reliability_plugin.py's synthetic data, a sweep-trained teacher, ce, kd, a
counting loss and a loss that turns NaN) runs once; each test damages a copy of its output folder,
runs the sweep again and checks the warning, what was trained again (the counting loss logs every
epoch it trains) and that the leaderboard equals the undamaged one.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from kdzoo.engine import runfolder
from kdzoo.engine.checkpoint import save_checkpoint
from kdzoo.errors import RecoveryWarning

from reliability_harness import leaderboard, results, sweep_here, write_recipe

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_FILES = ("checkpoint.pt", "checkpoint.pt.sha256", "checkpoint.prev.pt", "checkpoint.prev.pt.sha256")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    recipe = write_recipe(root, seeds=(0,), name="relintegrity")
    sweep_here(recipe, root / "out", root / "counts.txt")
    plan = json.loads((root / "out" / "plan.json").read_text())
    return {"root": root, "recipe": recipe, "rows": leaderboard(root / "out"), "results": results(root / "out"),
            "hash": {e["label"]: e["hash"] for e in plan["entries"]}}


@pytest.fixture
def damaged(swept, tmp_path):
    """A copy of the swept folder to damage: (out, run folder of a label, counts file)."""
    out = tmp_path / "out"
    shutil.copytree(swept["root"] / "out", out)
    return out, (lambda label: out / "runs" / swept["hash"][label]), tmp_path / "counts.txt"


def _again(swept, out, counts, *patterns: str, same: bool = True):
    """Run the sweep again; every pattern must match a RecoveryWarning. Returns (report, epochs trained)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecoveryWarning)
        report = sweep_here(swept["recipe"], out, counts)
    found = [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]
    for pattern in patterns:
        assert any(re.search(pattern, m) for m in found), (pattern, found)
    if same:
        assert leaderboard(out) == swept["rows"]
    trained = counts.read_text().split("\n")[:-1] if counts.exists() else []
    return report, [line.rsplit(" ", 1)[0] for line in trained]     # "TAG EPOCH"


# ------------------------------------------------------------------ checkpoints
def test_another_runs_checkpoints_are_not_resumed(swept, damaged):
    """kd's unfinished folder holds count's checkpoints (same student, same shapes): refused by run hash."""
    out, run, counts = damaged
    kd, count = swept["hash"]["kd"], swept["hash"]["count"]
    (run("kd") / "result.json").unlink()
    for name in CHECKPOINT_FILES:
        shutil.copyfile(run("count") / name, run("kd") / name)
    report, _ = _again(swept, out, counts,
                       rf"runs/{kd}/checkpoint\.pt belongs to run {count}, not to run {kd}",
                       rf"runs/{kd}/checkpoint\.prev\.pt belongs to run {count}.*training restarts from scratch")
    assert report.ran == [kd]


def _legacy_teacher_state(run) -> dict:
    """The teacher's final checkpoint as kdzoo wrote it before checkpoints named their run."""
    state = torch.load(run("teacher") / "checkpoint.pt", map_location="cpu", weights_only=True)
    state.pop("run"), state.pop("depends")
    return state


def test_a_checkpoint_of_another_architecture_names_the_keys_and_falls_back_to_prev(swept, damaged):
    out, run, counts = damaged
    (run("count") / "result.json").unlink()
    save_checkpoint(_legacy_teacher_state(run), run("count") / "checkpoint.pt")   # a CNN's weights, an MLP's run
    _, trained = _again(swept, out, counts, r"checkpoint\.pt does not fit the model \(missing \S+, .*unexpected "
                                            r"\S+.*\); resuming from checkpoint\.prev\.pt \(epoch 2\)")
    assert trained == ["c 3"]                  # only the epoch after the fallback


def test_both_checkpoints_of_another_architecture_restart_the_run_and_retry_failed_is_not_needed(swept, damaged):
    out, run, counts = damaged
    (run("count") / "result.json").unlink()
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        save_checkpoint(_legacy_teacher_state(run), run("count") / name)
    _, trained = _again(swept, out, counts, r"does not fit the model.*no good checkpoint left, training restarts")
    assert trained == ["c 1", "c 2", "c 3"]


# ---------------------------------------------------------------------- results
def _edit_top1(path: Path) -> None:
    record = json.loads(path.read_text())
    record["top1"] += 10
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("damage,warning", [
    ("minimal", r"names no run"),
    ("edited", r"was changed after the run wrote it"),
    ("other-run", r"belongs to run \w+, not to run \w+"),
])
def test_a_result_that_is_not_the_runs_own_is_finished_again(swept, damaged, damage, warning):
    out, run, counts = damaged
    path = run("count") / "result.json"
    if damage == "minimal":
        path.write_text(json.dumps({"status": "finished", "epochs": 2}))
    elif damage == "edited":
        _edit_top1(path)
    else:
        shutil.copyfile(run("ce") / "result.json", path)
    report, trained = _again(swept, out, counts, rf"runs/{swept['hash']['count']}/result\.json {warning}")
    assert trained == [] and report.ran == [swept["hash"]["count"]]   # from its final checkpoint: no epoch again
    again, before = (json.dumps(r[swept["hash"]["count"]], sort_keys=True) for r in (results(out), swept["results"]))
    assert again == before                                            # the record the run wrote, digest and all


def test_a_swapped_teacher_model_is_found_and_finished_again(swept, damaged):
    out, run, counts = damaged
    model = run("teacher") / "model.pt"
    good = model.read_bytes()
    weights = torch.load(model, weights_only=True)
    torch.save({k: v + 0.5 if v.is_floating_point() else v for k, v in weights.items()}, model)
    report, trained = _again(swept, out, counts, r"model\.pt is not the file this run wrote")
    assert model.read_bytes() == good                     # the teacher's own weights again
    assert report.ran == [swept["hash"]["teacher"]]         # its students still match it: not trained again


def test_a_student_of_a_teacher_trained_again_differently_is_trained_again(swept, damaged):
    """The teacher's weights and result were replaced consistently (as if it were trained again
    elsewhere): kd's result and checkpoints name the old file, so kd trains again from scratch."""
    out, run, counts = damaged
    model = run("teacher") / "model.pt"
    weights = torch.load(model, weights_only=True)
    buf = io.BytesIO()
    torch.save({k: v * 0.9 if v.is_floating_point() else v for k, v in weights.items()}, buf)
    model.write_bytes(buf.getvalue())
    record = json.loads((run("teacher") / "result.json").read_text())
    from kdzoo.utils import sha256_bytes
    record["model_sha256"] = sha256_bytes(buf.getvalue())
    runfolder.write_result(run("teacher"), record)
    kd = swept["hash"]["kd"]
    report, _ = _again(swept, out, counts, rf"runs/{kd}: the teacher file it was trained with has changed",
                       rf"runs/{kd}/checkpoint\.pt was trained with another teacher file", same=False)
    assert report.ran == [kd]
    assert results(out)[kd]["depends"]["teacher"] == record["model_sha256"]


# -------------------------------------------------------------- small damage
def test_a_file_where_a_run_folder_belongs_is_moved_aside_and_the_run_trained(swept, damaged):
    out, run, counts = damaged
    folder = run("count")
    shutil.rmtree(folder)
    folder.write_bytes(b"")
    report, trained = _again(swept, out, counts, r"is a file, not a run folder; moved to \w+\.not-a-folder")
    assert trained == ["c 1", "c 2", "c 3"] and folder.is_dir()
    assert (out / "runs" / f"{folder.name}.not-a-folder").is_file()


def test_an_unreadable_config_of_an_unfinished_run_is_written_again(swept, damaged):
    out, run, counts = damaged
    (run("count") / "result.json").unlink()
    (run("count") / "config.json").write_bytes(b"\x00{garbage")
    report, trained = _again(swept, out, counts, r"config\.json cannot be read as a run's settings")
    assert trained == [] and report.ran == [swept["hash"]["count"]]
    assert json.loads((run("count") / "config.json").read_text())["method"] == "reltest_count"


def test_recovery_warnings_print_one_line_each(swept, damaged):
    """From the command line: each RecoveryWarning is one line, without Python's source line."""
    out, run, counts = damaged
    (run("count") / "metrics.jsonl").write_text("{truncated")
    _edit_top1(run("ce") / "result.json")
    proc = subprocess.run([sys.executable, "-m", "kdzoo", "bench", str(swept["recipe"]), "--out", str(out),
                           "--device", "cpu", "--no-progress", "--workers", "1"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    warned = [line for line in lines if "RecoveryWarning" in line]
    assert len(warned) == 2 and all(line.startswith("kdzoo: RecoveryWarning: ") for line in warned), lines
    assert not [line for line in lines if line.startswith(" ")], lines      # no code line under a warning
