"""Real sweeps on a tiny synthetic dataset: what a sweep leaves, launchers, failures, DOT beside its method.

The dataset and the plugin loss ``my_kd`` come from tests/bench_plugin.py, named in the recipe's
``plugins:`` as a user's file would be. ``my_kd`` appends one line per run execution to
$KDZOO_BENCH_COUNTER, which is how these tests see that no run is trained twice. Interrupted
and concurrent sweeps are the reliability tests' (test_reliability_kill.py,
test_reliability_concurrency.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from kdzoo.bench.execution import provenance
from kdzoo.bench.runner import run_bench

PLUGIN = Path(__file__).with_name("bench_plugin.py")
COMPARE = ["config_hash", "label", "seed", "status", "top1", "top5", "best_top1", "best_epoch", "epochs_done",
           "teacher_top1", "teacher_queries"]


def recipe(tmp_path: Path, *, seeds: str = "[0, 1]", methods: str = "[ce, kd, my_kd]", name: str = "run") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 2, batch_size: 16}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
methods: {methods}
seeds: {seeds}
train: {{epochs: 3, batch_size: 16}}
""")
    return path


def results(out: Path) -> dict[str, tuple[int, str]]:
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in (out / "runs").glob("*/result.json")}


def board(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "leaderboard.csv")[COMPARE].sort_values(["config_hash", "label"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One sweep in this process, the reference of the others."""
    tmp = tmp_path_factory.mktemp("reference")
    counter = tmp / "counter"
    os.environ["KDZOO_BENCH_COUNTER"] = str(counter)
    try:
        report = run_bench(recipe(tmp), tmp / "out", progress=False)
    finally:
        del os.environ["KDZOO_BENCH_COUNTER"]
    return tmp / "out", report, counter


def test_sweep_runs_everything_and_never_recomputes(reference):
    out, report, counter = reference
    assert report.ok and len(report.ran) == 7 and report.skipped_done == 0
    assert set(report.statuses.values()) == {"finished"}
    df = pd.read_csv(out / "leaderboard.csv")
    mine = df[df.label == "my_kd"]            # the plugin loss from the user's file is on the board
    assert len(mine) == 2 and (mine.status == "finished").all() and (mine.top1 > 0).all()
    assert (out / "leaderboard.md").read_text().count("| `my_kd` |") == 1   # one row (it may also be in "tied with")
    assert {p.name for p in out.iterdir()} >= {"leaderboard.csv", "summary.csv", "leaderboard.md",
                                               "leaderboard.png", "plan.json", "recipe.yaml", "runs"}
    assert counter.read_text().count("\n") == 2
    # what decides bit-identity is recorded: the CPU kernels torch dispatches to, its build, the threads
    assert (df.cpu_capability == torch.backends.cpu.get_cpu_capability()).all()
    assert (df.torch_build == torch.version.git_version[:12]).all() and (df.threads == 1).all()
    machine = provenance.machine()      # and the machine: CPU model, what oneDNN and MKL dispatch to
    for column in ("cpu_vendor", "cpu_model", "onednn_isa", "mkl_isa"):
        assert (df[column] == machine[column]).all(), column
    md = (out / "leaderboard.md").read_text()
    assert f"CPU {machine['cpu_vendor']} {machine['cpu_model']}, CPU capability " \
           f"{torch.backends.cpu.get_cpu_capability()}, oneDNN ISA {machine['onednn_isa']}, MKL code path " \
           f"{machine['mkl_isa']}" in md and "threads per run 1." in md
    # learning curves: one row per student run entry and epoch, read back from each run's metrics.jsonl
    curves = pd.read_csv(out / "curves.csv")
    students = df[df.role == "student"]
    assert len(curves) == 3 * len(students) and sorted(curves.epoch.unique()) == [1, 2, 3]
    one = students.iloc[0]
    last = curves[(curves.label == one.label) & (curves.seed == one.seed) & (curves.epoch == 3)]
    assert last.test_top1.iloc[0] == pytest.approx(one.top1)
    assert (out / "curves.png").stat().st_size > 5000
    before = results(out)
    again = run_bench(recipe(out.parent), out, progress=False)
    assert again.ran == [] and again.skipped_done == 7 and again.ok
    assert results(out) == before


def test_process_pool_gives_the_same_results(reference, tmp_path):
    ref_out, _, _ = reference
    report = run_bench(recipe(tmp_path), tmp_path / "out", workers=2, progress=False)
    assert report.ok and len(report.ran) == 7
    pd.testing.assert_frame_equal(board(tmp_path / "out"), board(ref_out))


def test_submitit_debug_executor(tmp_path):
    submitit = pytest.importorskip("submitit")
    ex = submitit.DebugExecutor(folder=tmp_path / "jobs")
    report = run_bench(recipe(tmp_path, seeds="[0]"), tmp_path / "out", launcher="slurm", executor=ex,
                       progress=False)
    assert report.ok and len(report.ran) == 4


def test_submitit_local_executor_through_the_cli(tmp_path, capsys):
    pytest.importorskip("submitit")
    from conftest import kdzoo_main as main
    path = recipe(tmp_path, seeds="[0]", methods="[ce, kd]")
    rc = main(["bench", str(path), "--out", str(tmp_path / "out"), "--launcher", "slurm", "--slurm-cluster", "local",
               "--time-min", "10", "--cpus-per-task", "1", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    assert len(df) == 3 and (df.status == "finished").all()
    assert list((tmp_path / "out" / "slurm").glob("*_log.out"))      # submitit's job logs


def test_failed_run_is_recorded_and_fail_fast_stops(tmp_path, capsys):
    from conftest import kdzoo_main as main
    path = recipe(tmp_path, methods="[ce, boom, kd]")
    rc = main(["bench", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    df = pd.read_csv(tmp_path / "out" / "leaderboard.csv")
    boom = df[df.label == "boom"]
    assert len(boom) == 2 and (boom.status == "failed").all()
    assert boom.message.str.contains("RuntimeError: boom: this loss always fails").all()
    assert (df[df.label != "boom"].status == "finished").all()   # ce trained in boom's cohort still finished
    assert "failed" in (tmp_path / "out" / "leaderboard.md").read_text()
    capsys.readouterr()

    rc = main(["bench", str(path), "--out", str(tmp_path / "out2"), "--fail-fast", "--cohort", "off",
               "--no-progress", "--workers", "1"])
    assert rc == 1
    assert "stopped (--fail-fast)" in capsys.readouterr().out
    df = pd.read_csv(tmp_path / "out2" / "leaderboard.csv")
    assert (df.status == "pending").sum() >= 3 and (df.status == "failed").sum() == 1


def test_a_method_with_dot_beside_its_plain_method(tmp_path):
    """kd, kd+dot and dkd+dot (method entries with ``train: {optimizer: dot}``) in one sweep: kd+dot trains in
    a unit without kd (a cohort has one TrainConfig), its config.json says optimizer dot, and its result and
    weights equal training it alone."""
    import json
    from kdzoo.bench.plan import make_units
    path = tmp_path / "dot.yaml"
    path.write_text(f"""\
name: dot
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16, steps_per_epoch: 3}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_mlp}}
methods:
  - kd
  - {{name: kd, label: kd+dot, train: {{optimizer: dot}}}}
  - {{name: dkd, label: dkd+dot, train: {{optimizer: dot}}}}
train: {{epochs: 1, batch_size: 16, steps_per_epoch: 3}}
""")
    together = run_bench(path, tmp_path / "together", progress=False)
    alone = run_bench(path, tmp_path / "alone", cohort="off", progress=False)
    assert together.ok and alone.ok and len(together.ran) == len(alone.ran) == 4
    plan = together.plan
    run = {e.label: e.hash for e in plan.entries}
    units = sorted(sorted(u) for u in make_units(plan.specs, plan.hashes("student")))
    assert units == sorted([[run["kd"]], sorted([run["kd+dot"], run["dkd+dot"]])])
    for label, optimizer in (("kd", "sgd"), ("kd+dot", "dot"), ("dkd+dot", "dot")):
        folder = tmp_path / "together" / "runs" / run[label]
        assert json.loads((folder / "config.json").read_text())["train"]["optimizer"] == optimizer
        solo = tmp_path / "alone" / "runs" / run[label]
        a, b = (json.loads((f / "result.json").read_text()) for f in (folder, solo))
        assert (a["top1"], a["top5"], a["best_top1"]) == (b["top1"], b["top5"], b["best_top1"]), label
        wa, wb = (torch.load(f / "model.pt", weights_only=True) for f in (folder, solo))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), label
    kd, dot = (torch.load(tmp_path / "together" / "runs" / run[x] / "model.pt", weights_only=True)
               for x in ("kd", "kd+dot"))
    assert not all(torch.equal(kd[k], dot[k]) for k in kd)     # DOT trained otherwise
