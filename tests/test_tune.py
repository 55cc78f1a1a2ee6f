"""kdzoo tune end to end on a tiny recipe: determinism (rerun, --workers 2, kill -9), equal budgets, the test split
never read during the search (instrumented), a plugin's declared space searched, pruned trials never retrained.

The recipe (tests/tune_plugin.py's 8x8 dataset, a teacher checkpoint with random weights, an MLP student,
3 epochs, 4 trials a study) runs in about ten seconds; the reference tuning is made once per module.
"""
from __future__ import annotations

import csv
import json
import signal
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.bench.tune import files

pytestmark = pytest.mark.usefixtures("plugin_registrations_undone")


optuna = pytest.importorskip("optuna")

TESTS = Path(__file__).resolve().parent
TRIALS = 4


def write_recipe(folder: Path, *, workers_note: str = "", extra_plugins: tuple[str, ...] = (),
                 tune_lines: list[str] | None = None, methods: str = "[ce, kd, tunetest_kd]") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    teacher = folder / "teacher.pt"
    if not teacher.exists():
        import kdzoo
        torch.manual_seed(0)
        model = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=1, image_size=(8, 8))
        torch.save(model.state_dict(), teacher)
    plugins = [str(TESTS / "tune_plugin.py"), *extra_plugins]
    tune = tune_lines if tune_lines is not None else [
        "tune:",
        f"  trials: {TRIALS}",
        "  search: {lr: {low: 0.02, high: 0.5, log: true}, weight_decay: {low: 1.0e-5, high: 1.0e-3, log: true}}",
        "  val_size: 0.25",
        "  seed: 0",
        "  sampler: {name: tpe, seed: 3, startup_trials: 2}",
        "  pruner: {name: successive_halving, min_epochs: 1, reduction_factor: 2}",
    ]
    lines = ["name: tunetest", "dataset: tunetest-tiny", f"plugins: [{', '.join(plugins)}]",
             "teachers:", f"  fmnist_cnn_tiny: {{ckpt: {teacher}}}",
             "pairs:", "  - {teacher: fmnist_cnn_tiny, student: fmnist_mlp}",
             f"methods: {methods}", "seeds: [0, 1]", "train: {epochs: 3, batch_size: 16, lr: 0.1}", *tune]
    path = folder / "tunetest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def outcome(out: Path) -> dict:
    """What must not change between two tunings of one recipe: every trial, the choices, the final numbers."""
    with open(out / files.TUNE_DIR / files.TRIALS, newline="") as f:
        trials = list(csv.DictReader(f))
    chosen = json.loads((out / files.TUNE_DIR / files.CHOSEN).read_text())
    with open(out / "tuned_leaderboard.csv", newline="") as f:
        board = list(csv.DictReader(f))
    finals = {}
    for d in sorted((out / "runs").iterdir()):
        r = json.loads((d / "result.json").read_text())
        finals[d.name] = (r["status"], r["epochs"], r.get("top1"), r.get("val_top1"))
    return {"trials": trials, "chosen": chosen, "board": board, "runs": finals}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted tuning, in this process: first --search-only with every test-split read counted,
    then the final runs."""
    from kdzoo.bench.tune.runner import run_tune

    root = tmp_path_factory.mktemp("tune-reference")
    recipe = write_recipe(root)
    reads = root / "reads.log"
    mp = pytest.MonkeyPatch()
    mp.setenv("KDZOO_TUNETEST_READS", str(reads))
    try:
        search = run_tune(recipe, root / "out", workers=1, device="cpu", search_only=True, progress=False)
        searched_reads = reads.read_text().splitlines() if reads.exists() else []
        full = run_tune(recipe, root / "out", workers=1, device="cpu", progress=False)
        final_reads = reads.read_text().splitlines() if reads.exists() else []
    finally:
        mp.undo()
    return {"root": root, "recipe": recipe, "out": root / "out", "search": search, "full": full,
            "searched_reads": searched_reads, "final_reads": final_reads, "outcome": outcome(root / "out")}


def test_the_test_split_is_never_read_during_the_search(reference):
    assert reference["search"].trials == 3 * TRIALS and reference["search"].trained == 3 * TRIALS
    assert reference["searched_reads"] == []                         # 12 trials trained, not one read
    assert len(reference["final_reads"]) > 0                         # the counter works: final runs read it
    trial_runs = {t["run"] for t in reference["outcome"]["trials"]}
    for h in trial_runs:
        d = reference["out"] / "runs" / h
        assert json.loads((d / "config.json").read_text())["holdout"] == 0.25
        for line in (d / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            assert "val_top1" in record and not any(k.startswith("test_") for k in record)
        assert json.loads((d / "result.json").read_text())["top1"] is None     # strict JSON: no test top-1


def test_every_method_gets_the_configured_number_of_trials(reference):
    trials = reference["outcome"]["trials"]
    per_study: dict[str, list[str]] = {}
    for t in trials:
        per_study.setdefault(t["label"], []).append(t["state"])
    assert sorted(per_study) == ["ce", "kd", "tunetest_kd"]         # ce is searched like every method
    for label, states in per_study.items():
        assert len(states) == TRIALS, label
        assert set(states) <= {"COMPLETE", "PRUNED"}, label
    assert any(t["state"] == "PRUNED" for t in trials)                # the pruner stopped some trials
    board = {r["label"]: r for r in reference["outcome"]["board"]}
    assert {r["trials"] for r in board.values()} == {str(TRIALS)}
    assert sum(int(r["pruned"]) for r in board.values()) == sum(t["state"] == "PRUNED" for t in trials)


def test_trial_zero_is_the_recipe_and_lr_is_searched_by_every_method(reference):
    trials = reference["outcome"]["trials"]
    firsts = [json.loads(t["params"]) for t in trials if t["number"] == "0"]
    assert all(p["train.lr"] == 0.1 and p["train.weight_decay"] == 5e-4 for p in firsts)
    for t in trials:
        p = json.loads(t["params"])
        if t["number"] != "0":
            assert 0.02 <= p["train.lr"] <= 0.5 and 1e-5 <= p["train.weight_decay"] <= 1e-3


def test_a_plugin_loss_with_a_declared_space_is_tuned(reference):
    out = reference["out"]
    mine = [json.loads(t["params"]) for t in reference["outcome"]["trials"] if t["label"] == "tunetest_kd"]
    assert all(set(p) == {"train.lr", "train.weight_decay", "loss.temperature", "loss.kd_weight"} for p in mine)
    assert len({p["loss.temperature"] for p in mine}) == TRIALS      # every trial drew its own temperature
    assert all(1.0 <= p["loss.temperature"] <= 8.0 and 0.1 <= p["loss.kd_weight"] <= 2.0 for p in mine[1:])
    # the chosen values are what the tuned final runs train with, seed by seed, on the test split
    chosen = reference["outcome"]["chosen"]["fmnist_cnn_tiny->fmnist_mlp/tunetest_kd/logits"]["params"]
    plan = json.loads((out / files.TUNE_DIR / files.PLAN).read_text())
    specs = [s for s in plan["specs"].values() if s["method"] == "tunetest_kd"]
    assert sorted(s["seed"] for s in specs) == [0, 1]
    for s in specs:
        assert s["loss_kwargs"]["temperature"] == chosen["loss.temperature"]
        assert s["train"]["lr"] == chosen["train.lr"] and "holdout" not in s
        result = json.loads((out / "runs" / _hash(plan, s) / "result.json").read_text())
        assert result["status"] == "finished" and result["top1"] > 0


def _hash(plan: dict, spec: dict) -> str:
    return next(h for h, s in plan["specs"].items() if s == spec)


def test_the_defaults_final_runs_are_the_bench_runs(reference):
    from kdzoo.bench.recipe.parse import load_recipe
    from kdzoo.bench.plan import expand

    plan = expand(load_recipe(reference["recipe"]), reference["out"])
    for h in plan.hashes("student"):
        assert json.loads((reference["out"] / "runs" / h / "result.json").read_text())["status"] == "finished"
    text = (reference["out"] / "tuned_leaderboard.md").read_text()
    assert "| `tunetest_kd` |" in text and "Δ vs tuned CE" in text and "val median [IQR]" in text


def test_the_tuned_table_compares_each_method_with_tuned_kd_as_with_tuned_ce(reference):
    # With every seed of both methods kept, the family's seed-adjusted difference is the plain difference of
    # the means (complete two-way layout), so the column can be checked against the tuned means alone.
    board = {r["label"]: r for r in reference["outcome"]["board"]}
    kd, other = board["kd"], board["tunetest_kd"]
    assert kd["delta_kd"] == "" and kd["vs_kd"] == "—"
    assert other["tuned_n_kept"] == kd["tuned_n_kept"] == other["tuned_n_finished"] == "2"
    diff, low, high = (float(other[c]) for c in ("delta_kd", "delta_kd_low", "delta_kd_high"))
    assert diff == pytest.approx(float(other["tuned_mean"]) - float(kd["tuned_mean"]))
    assert low < diff < high
    assert other["vs_kd"] == ("better" if low > 0 else "worse" if high < 0 else "tied")
    assert board["ce"]["delta_kd"] == "" and board["ce"]["vs_kd"] == "—"   # KD at CE's access (none): no such row
    text = (reference["out"] / "tuned_leaderboard.md").read_text()
    assert "Δ vs tuned KD [simultaneous 95%] | vs KD |" in text
    assert f"| {other['vs_kd']} |" in next(line for line in text.splitlines() if line.startswith("| `tunetest_kd` |"))


def test_tune_wall_sums_the_time_reports_and_counts_the_tuning(reference, tmp_path):
    sys.path.insert(0, str(TESTS.parent / "benchmarks"))   # a script beside its siblings, not a package
    try:
        import tune_wall
    finally:
        sys.path.pop(0)
    report = ("\tUser time (seconds): {u}\n\tSystem time (seconds): {s}\n"
              "\tElapsed (wall clock) time (h:mm:ss or m:ss): {w}\n"
              "\tMaximum resident set size (kbytes): {m}\n\tExit status: {e}\n")
    first, second = tmp_path / "t1.txt", tmp_path / "t2.txt"
    first.write_text(report.format(u=100.5, s=9.5, w="1:02:03.5", m=2048, e=0))
    second.write_text(report.format(u=20, s=2, w="0:30", m=4096, e=130))
    m = tune_wall.measure(reference["out"], [first, second])
    trials = reference["outcome"]["trials"]
    assert (m["wall_seconds"], m["cpu_seconds"], m["max_rss_mib"]) == (3753.5, 132.0, 4.0)
    assert m["exit_statuses"] == [0, 130] and m["invocations"] == 2
    assert m["studies"] == 3 and m["trials"] == 3 * TRIALS == len(trials)
    assert m["trial_statuses"]["pruned"] == sum(t["state"] == "PRUNED" for t in trials)
    assert sum(m["trial_statuses"].values()) == len(trials)
    assert m["trial_epochs_trained"] == sum(int(t["epochs"]) for t in trials)
    assert m["trial_epochs_without_pruning"] == 3 * TRIALS * 3          # the recipe trains 3 epochs
    assert m["trials_per_wall_hour"] == round(3 * TRIALS / (3753.5 / 3600), 1)
    assert m["final_runs_defaults"] == m["final_runs_tuned"] == 3 * 2   # 3 methods x seeds 0, 1
    assert m["final_runs_defaults_statuses"] == {"finished": 6}
    with pytest.raises(SystemExit) as bad:
        tune_wall.measure(reference["out"], [tmp_path / "missing.txt"])
    assert bad.value.code == 2


def test_a_rerun_trains_nothing_and_changes_nothing(reference):
    from kdzoo.bench.tune.runner import run_tune

    report = run_tune(reference["recipe"], reference["out"], workers=1, device="cpu", progress=False)
    assert report.trained == 0 and report.trials == 3 * TRIALS
    assert outcome(reference["out"]) == reference["outcome"]


def test_two_workers_give_the_same_trials_and_choices(reference, tmp_path):
    """Studies run side by side, each one trial at a time: with --workers 2 (and without the kd study) the
    other studies' trials and choices are the reference's, value for value."""
    from kdzoo.bench.tune.runner import run_tune

    recipe = write_recipe(tmp_path, methods="[ce, tunetest_kd]")
    run_tune(recipe, tmp_path / "out", workers=2, device="cpu", search_only=True, progress=False)
    with open(tmp_path / "out" / files.TUNE_DIR / files.TRIALS, newline="") as f:
        trials = list(csv.DictReader(f))
    ref = reference["outcome"]
    assert trials == [t for t in ref["trials"] if t["label"] != "kd"]
    chosen = json.loads((tmp_path / "out" / files.TUNE_DIR / files.CHOSEN).read_text())
    assert chosen == {k: v for k, v in ref["chosen"].items() if "/kd/" not in k}


def test_kill_9_mid_tuning_then_rerun_gives_the_same_tuning(reference, tmp_path):
    """SIGKILLed at optimizer steps in the first trial round, in a later round and in the final runs; each
    rerun resumes; the last one ends with the reference's trials, choices and numbers."""
    from reliability_harness import start_bench

    from kdzoo.bench.tune.search import storage

    recipe = write_recipe(tmp_path, extra_plugins=(str(TESTS / "reliability_plugin.py"),))
    out = tmp_path / "out"
    argv = ["tune", str(recipe), "--out", str(out), "--device", "cpu", "--no-progress", "--workers", "1"]
    # (kill point, what the killed process printed last: where it was)
    for i, (event, where) in enumerate([("step:7", "ce fmnist_mlp trial 0 epoch 1/3"), ("step:60", " #1: "), ("step:60", " #3: ")]):
        log = tmp_path / f"tune-{i}.log"
        proc = start_bench(argv, log, KDZOO_RELTEST_KILL=event)
        proc.join(300)
        assert proc.exitcode == -signal.SIGKILL, log.read_text()
        assert where in log.read_text(), log.read_text()
        for journal in (out / files.TUNE_DIR / "studies").glob("*.journal"):   # never more than the budget
            trials = optuna.load_study(study_name=None, storage=storage(journal)).get_trials(deepcopy=False)
            assert len(trials) <= TRIALS and [t.number for t in trials] == list(range(len(trials)))
    proc = start_bench(argv, tmp_path / "tune-last.log")
    proc.join(300)
    assert proc.exitcode == 0, (tmp_path / "tune-last.log").read_text()
    assert outcome(out) == reference["outcome"]


def test_slurm_jobs_run_the_same_trials(reference, tmp_path):
    """--launcher slurm (submitit's debug executor: the jobs run here): trials written by jobs into the shared
    journals are the reference's first two of each study (a smaller budget, the same draws)."""
    submitit = pytest.importorskip("submitit")
    from kdzoo.bench.tune.runner import run_tune

    recipe = write_recipe(tmp_path, methods="[ce, tunetest_kd]")
    recipe.write_text(recipe.read_text().replace(f"trials: {TRIALS}", "trials: 2"))
    run_tune(recipe, tmp_path / "out", launcher="slurm", executor=submitit.DebugExecutor(folder=tmp_path / "jobs"),
             device="cpu", search_only=True, progress=False)
    with open(tmp_path / "out" / files.TUNE_DIR / files.TRIALS, newline="") as f:
        trials = list(csv.DictReader(f))
    assert trials == [t for t in reference["outcome"]["trials"] if t["label"] != "kd" and int(t["number"]) < 2]


def test_a_changed_search_space_on_the_same_folder_is_refused_untouched(reference, tmp_path, capsys):
    from conftest import kdzoo_main as main

    out = reference["out"]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    changed = tmp_path / "tunetest.yaml"
    changed.write_text(reference["recipe"].read_text().replace("high: 0.5", "high: 0.4"))
    assert main(["tune", str(changed), "--out", str(out), "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "searched with other settings" in err and "use another --out" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == {
        p: b for p, b in before.items() if p.name != ".lock"}
