"""kdzoo tune's parts: the tune: block's one-line errors, the pruner's replay, the trainer's epoch hook, trial data
(holdout), the sensitivity rule, the figures read back from matplotlib, the budget arithmetic, Optuna optional."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import kdzoo
from conftest import kdzoo_main as main
from test_tune import write_recipe

pytestmark = pytest.mark.usefixtures("plugin_registrations_undone")


TESTS = Path(__file__).resolve().parent
GOOD = ["tune:", "  trials: 4", "  search: {lr: {low: 0.02, high: 0.5, log: true}}"]


# ------------------------------------------------------------------ recipe checks
BAD = [
    (["tune:", "  trials: 0", "  search: {lr: {low: 0.02, high: 0.5}}"], "tune.trials: must be >= 1, got 0"),
    (["tune:", "  trials: 4", "  search: {weight_decay: {low: 1.0e-5, high: 1.0e-3}}"],
     "tune.search: must search 'lr' (every method, ce included, gets the same chance"),
    (["tune:", "  trials: 4", "  search: {lrr: {low: 0.02, high: 0.5}}"],
     "tune.search.lrr: unknown training setting 'lrr'; did you mean 'lr'?"),
    (["tune:", "  trials: 4", "  search: {lr: {low: 0.02, high: 0.5}, epochs: {low: 2, high: 9}}"],
     "tune.search.epochs: 'epochs' is not searched"),
    (["tune:", "  trials: 4", "  search: {lr: {low: 0.0, high: 0.5}}"],
     "tune.search.lr: training settings: search space lr=Float(low=0.0, high=0.5, log=False) includes 0.0, "
     "which it refuses (lr must be > 0, got 0.0)"),
    (["tune:", "  trials: 4", "  search: {lr: {low: 0.5, high: 0.02}}"], "tune.search.lr: Float(0.5, 0.02): low"),
    (["tune:", "  trials: 4", "  search: {lr: {low: 0.02, high: 0.5}, optimizer: [sgd, adamm]}"],
     "tune.search.optimizer: training settings: search space optimizer=Choice"),
    (GOOD + ["  sampler: {name: tpee}"], "tune.sampler.name: 'tpee' is not one of tpe, random; did you mean 'tpe'?"),
    (GOOD + ["  pruner: {name: successive_halving, min_epochs: 3}"],
     "tune.pruner.min_epochs: the pruner's first look (epoch 3) must come before the last epoch (3)"),
    (GOOD + ["  val_size: 1.5"], "tune.val_size: a share below 1 or a whole number of images, got 1.5"),
    (GOOD + ["  objective: test_top1"], "tune.objective: 'test_top1' is not one of val_top1"),
    (GOOD + ["  trails: 4"], "tune.trails: unknown key 'trails'; did you mean 'trials'?"),
]


@pytest.mark.parametrize("tune, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_a_bad_tune_block_is_one_line_and_exit_2_at_dry_run(tmp_path, capsys, tune, message):
    recipe = write_recipe(tmp_path, tune_lines=tune)
    for command in ("tune", "bench"):              # checked like the rest of the recipe, by every command
        assert main([command, str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{recipe}:" in err and message in err, err
    assert not (tmp_path / "out").exists()


def test_a_bad_space_declared_by_a_plugin_is_reported_at_its_method(tmp_path, capsys):
    recipe = write_recipe(tmp_path, methods="[ce, kd, tunetest_badspace]")
    assert main(["tune", str(recipe), "--dry-run"]) == 2
    err = capsys.readouterr().err
    line = next(i for i, text in enumerate(recipe.read_text().splitlines(), 1) if text.startswith("methods:"))
    assert err.count("\n") == 1 and f"{recipe}:{line}: methods[2]: " in err
    assert "loss 'tunetest_badspace': search space names 'tau', which is not one of its hyperparameters" in err
    assert "(it takes: temperature, kd_weight)" in err


def test_a_recipe_without_a_tune_block_is_one_line(tmp_path, capsys):
    recipe = write_recipe(tmp_path, tune_lines=[])
    assert main(["tune", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no 'tune:' block" in err


def test_dry_run_shows_studies_budget_and_fits_80_columns(tmp_path, capsys):
    recipe = write_recipe(tmp_path, tune_lines=GOOD + ["  pruner: {min_epochs: 1, reduction_factor: 2}"])
    assert main(["tune", str(recipe), "--out", str(tmp_path / "out"), "--dry-run", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    out = " ".join(out.split())                              # lines wrapped at 80 columns, joined again
    assert "search: 3 studies x 4 trials = 12 trials (0 ended)" in out
    assert "fmnist_mlp/ce (0/4): -" in out
    assert "fmnist_cnn_tiny->fmnist_mlp/tunetest_kd/logits (0/4): temperature 1 to 8, log; kd_weight" in out
    assert "epochs a trial" in out and "studies x 4 trials" in out
    assert not (tmp_path / "out").exists()


def test_without_optuna_tune_says_how_to_install_it_and_the_rest_works(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)         # import optuna now raises ImportError
    recipe = write_recipe(tmp_path)
    assert main(["tune", str(recipe), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == "kdzoo: error: kdzoo tune needs optuna: pip install 'optuna>=3.6' (or 'kdzoo[tune]')\n"
    assert main(["tune", str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert main(["bench", str(recipe), "--out", str(tmp_path / "out"), "--dry-run"]) == 0


# ------------------------------------------------------------------ pruning
@pytest.mark.parametrize("name", ["successive_halving", "hyperband"])
def test_the_replayed_pruner_decides_as_optuna_does_live(name):
    """Trials run one after another through Optuna's own pruner; the replay, rebuilt from the reported values
    alone, stops each trial at the same epoch, also when asked again (a resumed trial)."""
    optuna = pytest.importorskip("optuna")
    from kdzoo.bench.recipe.types import PrunerSettings
    from kdzoo.bench.tune.pruning import Replay, make_pruner

    settings, epochs = PrunerSettings(name=name, min_epochs=1, reduction_factor=2), 12
    live = optuna.create_study(study_name="s", direction="maximize", pruner=make_pruner(settings, epochs))
    g = torch.Generator().manual_seed(0)
    curves = [(torch.rand(1, generator=g).item() * 50 + torch.arange(1, epochs + 1) * torch.rand(1, generator=g)
               ).tolist() for _ in range(14)]
    stopped_live = []
    for curve in curves:
        t = live.ask()
        stop = epochs
        for epoch, v in enumerate(curve, 1):
            t.report(v, epoch)
            if epoch < epochs and t.should_prune():
                stop = epoch
                break
        live.tell(t, curve[-1]) if stop == epochs else live.tell(t, state=optuna.trial.TrialState.PRUNED)
        stopped_live.append(stop)
    assert len(set(stopped_live)) > 2                         # it stopped trials at several epochs
    for n, curve in enumerate(curves):
        past = live.get_trials(deepcopy=False)[:n]
        values = {e: v for e, v in enumerate(curve, 1)}
        replay = Replay("s", past, make_pruner(settings, epochs))
        stop = next((e for e in range(1, epochs) if replay.decide(values, e)), epochs)
        again = Replay("s", past, make_pruner(settings, epochs))   # resumed at epoch stop: same answer
        assert stop == stopped_live[n] and (stop == epochs or again.decide(values, stop))


def test_the_epoch_hook_stops_a_run_and_the_stop_survives_a_resume(tmp_path):
    from conftest import make_bundle
    from kdzoo.data import make_loader
    from kdzoo.engine import Member, Trainer, TrainConfig

    bundle = make_bundle()
    seen = []

    def fit(hook):
        torch.manual_seed(0)
        model = kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=(8, 8))
        config = TrainConfig(epochs=4, batch_size=16, lr=0.1, device="cpu")
        member = Member("ce", model, kdzoo.build_loss("ce"), run_dir=tmp_path / "run")
        trainer = Trainer([member], make_loader(bundle, "train", 16, train=True),
                          {"test": make_loader(bundle, "test", 64, train=False)}, None, config, progress=False,
                          on_epoch=hook)
        return trainer.fit()[0]

    result = fit(lambda member, record: seen.append((member.name, record["epoch"], "test_top1" in record))
                 or record["epoch"] == 2)
    assert result.status == "pruned" and result.epochs == 2 and seen == [("ce", 1, True), ("ce", 2, True)]
    assert "stopped after epoch 2 of 4" in result.message
    again = fit(lambda member, record: pytest.fail("a stopped run trained again"))
    assert again.status == "pruned" and again.epochs == 2


# ------------------------------------------------------------------ trial data
def test_a_trial_holds_out_part_of_the_students_data_and_drops_the_test_split(tmp_path, monkeypatch):
    from kdzoo.bench.recipe.plugins import import_plugin
    from kdzoo.bench.execution.run import load_bundle
    from kdzoo.bench.spec import RunSpec

    import_plugin(str(TESTS / "tune_plugin.py"))
    spec = RunSpec(dataset="tunetest-tiny", student="fmnist_mlp", method="ce", train_fraction=0.5, seed=3)
    assert "holdout" not in spec.to_dict()                    # earlier runs keep their hashes
    trial = RunSpec(**{**spec.__dict__, "holdout": 0.25})
    assert trial.config_hash() != spec.config_hash()
    reads = tmp_path / "reads"
    monkeypatch.setenv("KDZOO_TUNETEST_READS", str(reads))
    student, held = load_bundle(spec, None), load_bundle(trial, None)
    assert held.test is None and len(held.train) == 36 and len(held.val) == 12 and len(student.train) == 48
    pool = {tuple(x.flatten().tolist()) for x in student.train.images}
    assert all(tuple(x.flatten().tolist()) in pool for x in torch.cat([held.train.images, held.val.images]))
    other = load_bundle(RunSpec(**{**trial.__dict__, "method": "kd"}), None)     # the same split for every method
    assert torch.equal(other.val.images, held.val.images)
    assert not reads.exists()                                  # nothing read the test split


# ------------------------------------------------------------------ report and figures
TRIALS = pd.DataFrame([
    {"study": "a/ce", "label": "ce", "number": 0, "state": "COMPLETE", "status": "finished", "value": 80.0,
     "epochs": 4, "last_val_top1": 80.0},
    {"study": "a/ce", "label": "ce", "number": 1, "state": "PRUNED", "status": "pruned", "value": math.nan,
     "epochs": 1, "last_val_top1": 40.0},
    {"study": "a/ce", "label": "ce", "number": 2, "state": "COMPLETE", "status": "diverged", "value": 25.0,
     "epochs": 2, "last_val_top1": 30.0},
    {"study": "a/ce", "label": "ce", "number": 3, "state": "FAIL", "status": "failed", "value": math.nan,
     "epochs": 0, "last_val_top1": math.nan},
    {"study": "a/ce", "label": "ce", "number": 4, "state": "COMPLETE", "status": "finished", "value": 90.0,
     "epochs": 4, "last_val_top1": 90.0},
    {"study": "t->a/kd/logits", "label": "kd", "number": 0, "state": "COMPLETE", "status": "finished",
     "value": 26.5, "epochs": 4, "last_val_top1": 26.5},
])
META = {"trials": 5, "classes": 4, "chance": 25.0, "studies": [
    {"name": "a/ce", "label": "ce", "rows": [["t", "tm", "a", "none"]]},
    {"name": "t->a/kd/logits", "label": "kd", "rows": [["t", "tm", "a", "logits"]]}]}


def test_sensitivity_median_over_trials_trained_to_the_end_collapse_over_all():
    from kdzoo.bench.tune.report import sensitivity, trial_scores

    scores = trial_scores(TRIALS, 25.0)
    assert scores.tolist()[:3] == [80.0, 40.0, 25.0] and math.isnan(scores[3])
    assert math.isnan(trial_scores(TRIALS, 25.0, pruned=False)[1])
    s = sensitivity(TRIALS[TRIALS.study == "a/ce"], 4)       # to the end: 80, 25 (diverged: chance), 90
    assert s["val_median"] == 80.0 and s["val_q25"] == 52.5 and s["val_q75"] == 85.0 and s["val_n"] == 3
    # collapsed: diverged, or at most 25 + 15% of the way to 100 = 36.25 (kdzoo.stats): of 80, 40 (pruned), 25, 90
    assert s["collapsed"] == 0.25
    assert sensitivity(TRIALS[TRIALS.study == "t->a/kd/logits"], 4)["collapsed"] == 1.0   # 26.5


def test_the_figures_show_best_so_far_per_method_and_every_trial():
    from kdzoo.bench.tune.figures import best_so_far_figure, sensitivity_figure

    fig = best_so_far_figure(TRIALS, META)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in axes] == ["ce", "kd"]
    line = axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == [80.0, 80.0, 80.0, 80.0, 90.0]   # finished trials only, carried forward
    marks = [c.get_offsets().data.tolist() for c in axes[0].collections]
    assert [[2.0, 40.0]] in marks                               # the pruned trial, as a cross at its last value
    assert axes[0].get_xlabel() == "trial" and axes[0].get_ylabel() == "val top-1 (%)"
    fig2 = sensitivity_figure(TRIALS, META)
    ax = fig2.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ce", "kd"] and ax.get_title() == "t → a"
    xs = sorted(x for c in ax.collections for x, _ in c.get_offsets().data.tolist())
    assert xs == [25.0, 26.5, 40.0, 80.0, 90.0]
    import matplotlib.pyplot as plt
    plt.close("all")


def test_expected_epochs_under_successive_halving():
    from kdzoo.bench.recipe.types import PrunerSettings
    from kdzoo.bench.tune.budget import expected_epochs

    sha = PrunerSettings(min_epochs=2, reduction_factor=3)
    assert expected_epochs(20, None) == 20
    assert expected_epochs(4, sha, trials=1) == 4                    # the first trial is never stopped
    # two trials, one look at epoch 2: the second goes on iff it is the better one (half the time)
    assert expected_epochs(4, sha, trials=2, reps=4000) == pytest.approx((4 + (0.5 * 4 + 0.5 * 2)) / 2, abs=0.05)
    many = expected_epochs(20, sha, trials=200, reps=50)              # looks at 2, 6, 18: towards 1/3, 1/9, 1/27
    assert many == pytest.approx(2 + 4 / 3 + 12 / 9 + 2 / 27, abs=0.6)
    assert expected_epochs(20, sha, trials=20) == expected_epochs(20, sha, trials=20)   # seeded


# ------------------------------------------------------------------ studies
def test_studies_share_the_student_alone_and_trial_zero_is_the_recipes_run(tmp_path):
    """ce (never looks at the teacher) is one study for the pairs with its student, like its runs; for every
    method of the Fashion-MNIST recipe, the recipe's values (trial 0) give back the recipe's own run hashes."""
    from kdzoo.bench.recipe.parse import load_recipe, parse_recipe
    from kdzoo.bench.plan import expand
    from kdzoo.bench.tune.studies import apply, final_entries, make_studies

    text = "\n".join(["dataset: fashion-mnist", "teachers:", "  a: {model: fmnist_cnn_tiny, ckpt: a.pt}",
                      "  b: {model: fmnist_mlp, ckpt: b.pt}", "pairs:", "  - {teacher: a, student: fmnist_mlp}",
                      "  - {teacher: b, student: fmnist_mlp}", "methods: [ce, kd]", "seeds: [0, 1]", *GOOD])
    recipe = parse_recipe(text, base_dir=tmp_path)
    plan = expand(recipe, tmp_path)
    studies = make_studies(recipe, plan)
    assert [(s.name, len(s.rows)) for s in studies] == [("fmnist_mlp/ce", 2), ("a->fmnist_mlp/kd/logits", 1),
                                                         ("b->fmnist_mlp/kd/logits", 1)]
    tuned = final_entries(plan, studies, {s.name: {"train.lr": 0.07} for s in studies})
    assert len(tuned.entries) == len(plan.entries) and len(tuned.specs) == len(plan.specs)   # ce: shared
    assert all(s.train.lr == 0.07 for s in tuned.specs.values())

    fmnist = load_recipe(TESTS.parent / "recipes" / "fashion_mnist.yaml")
    plan = expand(fmnist, tmp_path)
    for study in make_studies(fmnist, plan):
        e = next(e for e in plan.entries if e.role == "student" and e.label == study.label)
        assert apply(plan.specs[e.hash], study.start, study.implicit).config_hash() == e.hash, study.name
