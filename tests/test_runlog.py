"""Run logging (engine/runlog.py): a finished tiny sweep read back from its TensorBoard event files and its
MLflow SQLite store, compared with every run's metrics.jsonl; logging leaves hashes and results alone,
opens no network connection, survives its own errors and rewrites a resumed run's log."""
from __future__ import annotations

import json
import socket
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from kdzoo.bench.report.leaderboard import load_plan
from kdzoo.bench.recipe.plugins import import_plugins
from kdzoo.bench.recipe.parse import load_recipe
from kdzoo.bench.execution.run import execute
from kdzoo.bench.spec import RunSpec
from kdzoo.bench.runner import log_name, run_bench
from kdzoo.engine import TrainConfig, runlog
from kdzoo.errors import ConfigError

tb = pytest.importorskip("tensorboard", reason="tensorboard not installed (pip install 'kdzoo[logging]')")
mlflow = pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'kdzoo[logging]')")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

PLUGIN = Path(__file__).with_name("bench_plugin.py")


def recipe(tmp_path: Path, log: str = "tensorboard") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""\
name: tiny
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 2, batch_size: 16}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
methods: [ce, kd, {{name: kd, label: kd-T1, args: {{temperature: 1}}}}]
seeds: [0]
train: {{epochs: 3, batch_size: 16, log: {log}}}
""")
    return path


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def events(folder: Path) -> EventAccumulator:
    ea = EventAccumulator(str(folder))
    ea.Reload()
    return ea


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished sweep with both loggers on (the recipe asks for tensorboard, --log for both), no network."""
    tmp = tmp_path_factory.mktemp("runlog")
    connects: list = []
    real = socket.socket.connect

    def connect(self, address):  # every outgoing connection attempt is recorded, and refused
        connects.append(address)
        raise OSError("network disabled by the test")

    socket.socket.connect = connect
    try:
        report = run_bench(recipe(tmp), tmp / "out", progress=False, log="tensorboard,mlflow")
    finally:
        socket.socket.connect = real
    return tmp / "out", report, connects


def test_every_run_is_in_tensorboard_under_its_name(sweep):
    out, report, _ = sweep
    plan = load_plan(out)
    assert report.ok and len(plan.hashes()) == 4          # teacher, ce, kd, kd-T1
    names = {h: log_name(plan, h) for h in plan.hashes()}
    assert sorted(names.values()) == ["fmnist_cnn_tiny/ce/seed0", "fmnist_mlp-fmnist_cnn_tiny/kd-T1/seed0",
                                      "fmnist_mlp-fmnist_cnn_tiny/kd/seed0", "teachers/fmnist_mlp/seed0"]
    for h, name in names.items():
        history = metrics(out / "runs" / h)
        ea = events(out / runlog.TENSORBOARD_DIR / name)
        tags = set(ea.Tags()["scalars"])
        terms = {f"loss/{t}" for t in history[0]["train"]}
        assert terms and terms | {"loss/total", "train/lr", "test/top1", "teacher/queries",
                                  "speed/images_per_second", "speed/epoch_seconds"} <= tags, (name, tags)
        for tag, key in (("test/top1", "test_top1"), ("train/lr", "lr"), ("loss/total", "train_loss"),
                         ("teacher/queries", "teacher_queries")):
            logged = [(e.step, e.value) for e in ea.Scalars(tag)]
            assert logged == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in history], (name, tag)
        for term in history[0]["train"]:
            assert [e.value for e in ea.Scalars(f"loss/{term}")] == pytest.approx(
                [r["train"][term] for r in history], rel=1e-6)
    kd = events(out / runlog.TENSORBOARD_DIR / names[next(e.hash for e in plan.entries if e.label == "kd")])
    assert kd.Scalars("teacher/queries")[-1].value > 0


def test_mlflow_records_the_same_runs_with_their_hashed_settings(sweep):
    out, _, _ = sweep
    plan = load_plan(out)
    client = runlog.mlflow_client(out)
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None and (out / runlog.MLFLOW_DB).is_file()
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags[runlog.HASH_TAG] for r in runs) == sorted(plan.hashes())
    for r in runs:
        h = r.data.tags[runlog.HASH_TAG]
        assert r.info.run_name == log_name(plan, h) and r.info.status == "FINISHED"
        assert r.data.params == runlog.flat_params(plan.specs[h].identity())
        history = metrics(out / "runs" / h)
        logged = client.get_metric_history(r.info.run_id, "test/top1")
        assert sorted((m.step, m.value) for m in logged) == [(x["epoch"], pytest.approx(x["test_top1"]))
                                                             for x in history]


def test_no_network_connection_was_attempted(sweep):
    assert sweep[2] == []


def test_logging_changes_neither_the_hash_nor_the_result(tmp_path):
    import_plugins([str(PLUGIN)])   # the bench-synth dataset
    spec = RunSpec(dataset="bench-synth", student="fmnist_cnn_tiny", method="ce", seed=0,
                   train=TrainConfig(epochs=2, batch_size=16))
    logged = replace(spec, train=replace(spec.train, log="tensorboard,mlflow"))
    assert logged.config_hash() == spec.config_hash() and "log" not in logged.identity()["train"]
    kw = dict(progress=False, cache_dir=tmp_path / "cache")
    plain, with_log = execute(spec, tmp_path / "a", **kw), execute(logged, tmp_path / "b", **kw)
    for key in ("status", "top1", "top5", "best_top1", "best_epoch", "config_hash"):
        assert plain[key] == with_log[key]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(metrics(tmp_path / "a")) == strip(metrics(tmp_path / "b"))
    # kdzoo train's layout: the run folder holds the log, under the folder's name
    assert not (tmp_path / "a" / runlog.TENSORBOARD_DIR).exists()
    assert events(tmp_path / "b" / runlog.TENSORBOARD_DIR / "b").Tags()["scalars"]
    assert (tmp_path / "b" / runlog.MLFLOW_DB).is_file()


def test_a_resumed_run_is_logged_from_its_own_history(tmp_path):
    """Epoch 3 of a first attempt was logged but never checkpointed; the second attempt resumes after epoch 2:
    the log then holds each epoch once, with the second attempt's epoch 3."""
    rec = lambda epoch, top1: {"epoch": epoch, "lr": 0.1, "train": {"ce": 1.0 / epoch},  # noqa: E731
                               "train_loss": 1.0 / epoch, "test_top1": top1}
    kw = dict(experiment="resume", params={"seed": 0}, tags={runlog.HASH_TAG: "abc"})
    first = runlog.RunLog("tensorboard,mlflow", tmp_path, "kd/seed0", **kw)
    for n in (1, 2, 3):
        first.epoch([rec(e, 10.0 * e) for e in range(1, n + 1)])
    first.close("interrupted")
    second = runlog.RunLog("tensorboard,mlflow", tmp_path, "kd/seed0", **kw)
    second.epoch([rec(1, 10.0), rec(2, 20.0), rec(3, 33.0)])
    second.epoch([rec(1, 10.0), rec(2, 20.0), rec(3, 33.0), rec(4, 44.0)])
    second.close("finished")
    ea = events(tmp_path / runlog.TENSORBOARD_DIR / "kd" / "seed0")
    assert [(e.step, e.value) for e in ea.Scalars("test/top1")] == [(1, 10.0), (2, 20.0), (3, 33.0), (4, 44.0)]
    client = runlog.mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    history = client.get_metric_history(runs[0].info.run_id, "test/top1")
    assert sorted((m.step, m.value) for m in history) == [(1, 10.0), (2, 20.0), (3, 33.0), (4, 44.0)]


def test_a_logger_error_is_one_warning_and_the_run_goes_on(tmp_path):
    (tmp_path / runlog.TENSORBOARD_DIR).write_text("a file where the event folder should be")
    said: list[str] = []
    log = runlog.RunLog("tensorboard", tmp_path, "x", experiment="e", params={}, tags={}, warn=said.append)
    log.epoch([{"epoch": 1, "test_top1": 50.0}])
    log.epoch([{"epoch": 1, "test_top1": 50.0}, {"epoch": 2, "test_top1": 60.0}])
    log.close("finished")
    assert len(said) == 1 and "tensorboard logging stopped" in said[0] and "\n" not in said[0]


def test_bad_or_missing_backend_is_one_line(tmp_path, monkeypatch, run_cli):
    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        TrainConfig(log="tensorbord")
    with pytest.raises(ConfigError, match=r"train\.log"):
        load_recipe(recipe(tmp_path, log="tensorbord"))
    assert runlog.parse("off") == () and runlog.parse("mlflow, tensorboard") == ("mlflow", "tensorboard")
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'kdzoo\[logging\]'"):
        runlog.check_installed("tensorboard,mlflow")
    runlog.check_installed("tensorboard")
    monkeypatch.undo()
    proc = run_cli("bench", str(recipe(tmp_path)), "--log", "mlfow", "--dry-run")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "did you mean 'mlflow'" in proc.stderr


def test_scalar_names():
    record = {"epoch": 2, "lr": 0.1, "train": {"ce": 1.5, "kd": 0.5}, "train_loss": 2.0, "seconds": 3.0,
              "teacher_queries": 96, "test_top1": 50.0, "val_top1": 40.0, "test_loss": float("nan")}
    assert runlog.scalars(record) == {"train/lr": 0.1, "loss/ce": 1.5, "loss/kd": 0.5, "loss/total": 2.0,
                                      "speed/epoch_seconds": 3.0, "teacher/queries": 96.0, "test/top1": 50.0,
                                      "val/top1": 40.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runlog.flat_params({"train": {"lr": 0.1, "milestones": []}, "method": "kd"}) == {
            "train.lr": "0.1", "train.milestones": "[]", "method": "kd"}
