"""Faults inside a sweep's run store: damaged files are found and redone from the last good state; divergence.

A small sweep (tests/reliability_plugin.py's synthetic data, a sweep-trained
teacher, ce, kd, a counting loss and a loss that turns NaN) runs once; each test
damages a copy of its output folder, runs the sweep again and checks the warning,
what was retrained (the counting loss logs every epoch it trains) and that the
leaderboard equals the undamaged one.
"""
from __future__ import annotations

import json
import re
import shutil
import warnings

import pandas as pd
import pytest
import torch

from kdzoo.bench.runner import run_bench
from kdzoo.engine.recovery import RecoveryWarning

from reliability_harness import leaderboard, results, sweep_here, write_recipe

from conftest import kdzoo_main as main


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("swept")
    recipe = write_recipe(root, seeds=(0,), name="relsweep")
    report = sweep_here(recipe, root / "out")
    by_label = {}
    plan = json.loads((root / "out" / "plan.json").read_text())
    for e in plan["entries"]:
        by_label[e["label"]] = e["hash"]
    return {"root": root, "recipe": recipe, "report": report, "rows": leaderboard(root / "out"),
            "results": results(root / "out"), "hash": by_label}


@pytest.fixture
def damaged(swept, tmp_path):
    """A copy of the swept folder to damage; returns (out, run dir of a label, counts file)."""
    out = tmp_path / "out"
    shutil.copytree(swept["root"] / "out", out)
    counts = tmp_path / "counts.txt"
    return out, (lambda label: out / "runs" / swept["hash"][label]), counts


def _again(swept, out, counts, match: str | None):
    if match is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecoveryWarning)
            report = sweep_here(swept["recipe"], out, counts)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RecoveryWarning)
            report = sweep_here(swept["recipe"], out, counts)
        found = [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]
        assert any(re.search(match, m) for m in found), found
    assert leaderboard(out) == swept["rows"]
    trained = counts.read_text().split("\n")[:-1] if counts.exists() else []
    return report, [line.rsplit(" ", 1)[0] for line in trained]    # "TAG EPOCH"


# ------------------------------------------------------------------------ divergence
def test_diverged_run_is_recorded_and_the_sweep_goes_on(swept):
    rows = {r["label"]: r for r in swept["rows"]}
    assert rows["nan"]["status"] == "diverged" and rows["nan"]["message"] == "non-finite loss in epoch 2"
    assert all(rows[k]["status"] == "finished" for k in ("ce", "kd", "count", "teacher"))
    record = swept["results"][swept["hash"]["nan"]]
    assert record["status"] == "diverged" and record["epochs"] == 1
    assert not (swept["root"] / "out" / "runs" / swept["hash"]["nan"] / "model.pt").exists()
    assert swept["report"].ok and not swept["report"].stopped
    summary = pd.read_csv(swept["root"] / "out" / "summary.csv", keep_default_na=False)  # label "nan"
    assert "diverged" in (swept["root"] / "out" / "leaderboard.md").read_text()
    assert set(summary.label) >= {"nan", "ce", "kd"}


def test_a_second_sweep_recomputes_nothing(swept, damaged):
    out, _, counts = damaged
    report, trained = _again(swept, out, counts, None)
    assert trained == [] and report.ran == []


def test_huge_learning_rate_diverges(tmp_path):
    recipe = write_recipe(tmp_path, seeds=(0,), methods=["ce"], name="relhugelr")
    text = recipe.read_text().replace("train: {epochs: 3, batch_size: 16, lr: 0.1}",
                                      "train: {epochs: 3, batch_size: 16, lr: 1.0e+12, schedule: constant}")
    recipe.write_text(text)
    report = run_bench(recipe, tmp_path / "out", device="cpu", progress=False)
    (row,) = [r for r in leaderboard(tmp_path / "out") if r["label"] == "ce"]
    assert row["status"] == "diverged" and "non-finite loss" in row["message"]
    assert report.ok     # a diverged run is a result, not an error of the sweep


def test_fail_fast_stops_at_the_first_diverged_run(tmp_path, capsys):
    recipe = write_recipe(tmp_path, seeds=(0,), methods=["{name: reltest_nan, label: nan, args: {after: 1}}",
                                                         "{name: reltest_count, label: count, args: {tag: x}}"],
                          name="relfailfast")
    rc = main(["bench", str(recipe), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress",
               "--fail-fast", "--cohort", "off", "--workers", "1"])   # one at a time: the second never starts
    out = capsys.readouterr().out
    assert rc == 1
    assert "stopped (--fail-fast): nan" in out and "diverged: non-finite loss in epoch 1" in out
    statuses = {r["label"]: r["status"] for r in leaderboard(tmp_path / "out")}
    assert statuses == {"nan": "diverged", "count": "pending"}
    # without --fail-fast the same sweep goes on past the diverged run
    rc = main(["bench", str(recipe), "--out", str(tmp_path / "out"), "--device", "cpu", "--no-progress",
               "--cohort", "off"])
    assert rc == 0
    statuses = {r["label"]: r["status"] for r in leaderboard(tmp_path / "out")}
    assert statuses == {"nan": "diverged", "count": "finished"}


# ------------------------------------------------------------------------ damaged files
@pytest.mark.parametrize("content", [b'{"status": "fini', b"", b"[]", b'{"top1": 12.5}'],
                         ids=["truncated", "empty", "not-a-record", "no-status"])
def test_corrupt_result_json_is_finished_again_without_retraining(swept, damaged, content):
    out, run, counts = damaged
    (run("count") / "result.json").write_bytes(content)
    report, trained = _again(swept, out, counts, r"result\.json (cannot be read|holds no result record)")
    assert trained == []                       # re-finished from its final checkpoint: no epoch trained again
    assert report.ran == [swept["hash"]["count"]]
    assert results(out)[swept["hash"]["count"]]["top1"] == swept["results"][swept["hash"]["count"]]["top1"]


def test_corrupt_checkpoint_of_an_unfinished_run_resumes_from_the_previous_one(swept, damaged):
    out, run, counts = damaged
    (run("count") / "result.json").unlink()                      # as if killed before the result was written
    ckpt = run("count") / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    _, trained = _again(swept, out, counts, r"checkpoint\.pt does not match its checksum.*resuming from "
                                            r"checkpoint\.prev\.pt \(epoch 2\)")
    assert trained == ["c 3"]                  # only the lost epoch was trained again


def test_both_checkpoints_gone_bad_restart_the_run_from_scratch(swept, damaged):
    out, run, counts = damaged
    (run("count") / "result.json").unlink()
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run("count") / name).write_bytes(b"\0" * 64)
    _, trained = _again(swept, out, counts, "no good checkpoint left, training restarts from scratch")
    assert trained == ["c 1", "c 2", "c 3"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage"])
def test_damaged_metrics_jsonl_of_a_finished_run_is_rebuilt(swept, damaged, damage):
    out, run, counts = damaged
    path = run("count") / "metrics.jsonl"
    good = path.read_text()
    if damage == "truncate":
        path.write_text(good[: len(good) // 2])
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(b"\x00\xff" * 20)
    _, trained = _again(swept, out, counts, "metrics.jsonl .*rewritten from the checkpoint")
    assert trained == [] and path.read_text() == good


def test_bad_metrics_and_no_final_checkpoint_redo_the_last_epoch(swept, damaged):
    out, run, counts = damaged
    (run("count") / "metrics.jsonl").write_text("{not json\n")
    (run("count") / "checkpoint.pt").write_bytes(b"")
    _, trained = _again(swept, out, counts, "no checkpoint of epoch 3 is left to rebuild it")
    assert trained == ["c 3"]


def test_truncated_model_of_a_finished_teacher_is_refinished(swept, damaged):
    out, run, counts = damaged
    model = run("teacher") / "model.pt"
    good = torch.load(model, weights_only=True)
    model.write_bytes(model.read_bytes()[:-200])
    report, trained = _again(swept, out, counts, r"model\.pt is truncated or corrupt")
    assert report.ran == [swept["hash"]["teacher"]] and trained == []
    again = torch.load(model, weights_only=True)
    assert all(torch.equal(good[k], again[k]) for k in good)
