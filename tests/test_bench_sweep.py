"""Sweep expansion, cohort grouping and run-hash stability."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import kdzoo
from kdzoo.bench import plan as plan_module
from kdzoo.bench.plan import can_share_cohort, estimate, expand, make_units, unit_phases
from kdzoo.bench.recipe.parse import load_recipe
from kdzoo.bench.spec import TRAIN_NOT_HASHED, RunSpec
from kdzoo.data import train_size
from kdzoo.engine import TrainConfig

PLUGIN = Path(__file__).with_name("bench_plugin.py")


def recipe_file(tmp_path: Path, ckpt: Path, extra: str = "") -> Path:
    text = f"""\
name: sweep
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 3, batch_size: 16}}}}
  big: {{model: fmnist_cnn_tiny, ckpt: {ckpt}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
  - {{teacher: big, student: fmnist_cnn_tiny, method_args: {{dkd: {{beta: 2}}}}}}
methods:
  - ce
  - kd
  - {{name: dkd, access: [logits]}}
access: [logits, probs]
seeds: [0, 1]
train: {{epochs: 2, batch_size: 16}}
{extra}"""
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "big.pt"
    torch.save(kdzoo.build_model("fmnist_cnn_tiny", num_classes=4).state_dict(), path)
    return path


def test_expansion(tmp_path, ckpt):
    out = tmp_path / "out"
    plan = expand(load_recipe(recipe_file(tmp_path, ckpt)), out)
    # 1 teacher row + 2 pairs x 2 seeds x (ce once + kd at 2 access levels + dkd at its 1)
    assert len(plan.entries) == 1 + 2 * 2 * 4
    assert plan.entries[0].role == "teacher"
    t_hash = plan.entries[0].hash
    t_spec = plan.specs[t_hash]
    assert (t_spec.student, t_spec.method, t_spec.seed, t_spec.teacher) == ("fmnist_mlp", "ce", 0, None)
    assert t_spec.train.epochs == 3 and t_spec.train_fraction == 1.0 and not t_spec.hide_labels
    # the student-alone run is shared by both pairs: 15 distinct runs
    assert len(plan.specs) == 1 + 2 * (1 + 2 * 3)
    assert plan.hashes()[0] == t_hash

    rows = {(e.teacher, e.label, e.access, e.seed): e for e in plan.entries if e.role == "student"}
    assert rows[("fmnist_mlp", "ce", "none", 0)].hash == rows[("big", "ce", "none", 0)].hash
    ce = plan.specs[rows[("fmnist_mlp", "ce", "none", 0)].hash]
    assert ce.teacher is None and ce.teacher_ckpt is None and ce.access == "none"
    kd = plan.specs[rows[("fmnist_mlp", "kd", "probs", 1)].hash]
    assert kd.teacher == "fmnist_mlp" and kd.teacher_run == t_hash and kd.seed == 1 and kd.train.seed == 1
    assert kd.teacher_ckpt == f"runs/{t_hash}/model.pt"   # relative to the output folder: no machine path
    assert kd.loss_kwargs == {"temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9, "standardize": False}
    assert rows[("fmnist_mlp", "kd", "probs", 1)].teacher_hash == t_hash
    big = plan.specs[rows[("big", "dkd", "logits", 0)].hash]
    assert big.teacher == "fmnist_cnn_tiny" and big.teacher_ckpt == str(ckpt) and big.teacher_run is None
    assert big.loss_kwargs["beta"] == 2.0 and big.train.lr == 0.05
    assert plan.specs[rows[("fmnist_mlp", "dkd", "logits", 0)].hash].loss_kwargs["beta"] == 8.0
    assert ("fmnist_mlp", "dkd", "probs", 0) not in rows
    assert plan.depends_on()[kd.config_hash()] == t_hash


def test_pair_train_override(tmp_path, ckpt):
    path = recipe_file(tmp_path, ckpt)
    path.write_text(path.read_text().replace("{dkd: {beta: 2}}}", "{dkd: {beta: 2}}, train: {lr: 0.01}}"))
    plan = expand(load_recipe(path), tmp_path)
    lrs = {(e.teacher, e.label): plan.specs[e.hash].train.lr for e in plan.entries if e.role == "student"}
    assert lrs[("big", "ce")] == lrs[("big", "kd")] == 0.01 and lrs[("fmnist_mlp", "kd")] == 0.05
    assert len(plan.specs) == 1 + 2 * 2 * (1 + 3)   # ce is no longer shared: the pairs train differently


DOT_METHODS = ("  - {name: kd, label: kd+dot, train: {optimizer: dot, lr: 0.02}}\n"
               "  - {name: dkd, label: dkd+dot, access: [logits], train: {optimizer: dot}}\n")


def dot_recipe(tmp_path, ckpt, pair_train: str = "") -> Path:
    """The sweep recipe with kd and dkd also trained with DOT (method entries with their own train)."""
    path = recipe_file(tmp_path, ckpt)
    text = path.read_text().replace("access: [logits, probs]", DOT_METHODS + "access: [logits, probs]")
    path.write_text(text.replace("{dkd: {beta: 2}}}", "{dkd: {beta: 2}}" + pair_train + "}"))
    return path


def test_method_train_override(tmp_path, ckpt):
    plain = expand(load_recipe(recipe_file(tmp_path, ckpt)), tmp_path)
    plan = expand(load_recipe(dot_recipe(tmp_path, ckpt, ", train: {lr: 0.01, weight_decay: 0.001}")), tmp_path)
    rows = {(e.teacher, e.label, e.access, e.seed): plan.specs[e.hash] for e in plan.entries}
    for teacher in ("fmnist_mlp", "big"):
        kd, dot = rows[(teacher, "kd", "logits", 0)], rows[(teacher, "kd+dot", "logits", 0)]
        assert kd.train.optimizer == "sgd" and dot.train.optimizer == "dot" and dot.train.dot_delta == 0.075
        assert dot.config_hash() != kd.config_hash()
        assert (dot.method, dot.loss_kwargs, dot.train.seed) == (kd.method, kd.loss_kwargs, kd.train.seed)
        assert rows[(teacher, "dkd+dot", "logits", 1)].train.optimizer == "dot"
        assert ("fmnist_mlp", "dkd+dot", "probs", 0) not in rows
    # recipe < pair < method: the method's lr wins over the pair's, the pair's weight decay stays
    big_dot = rows[("big", "kd+dot", "logits", 0)].train
    assert (big_dot.lr, big_dot.weight_decay) == (0.02, 0.001)
    assert (rows[("big", "kd", "logits", 0)].train.lr, rows[("big", "dkd+dot", "logits", 0)].train.lr) == (0.01, 0.01)
    assert (rows[("fmnist_mlp", "kd+dot", "logits", 0)].train.lr, rows[("fmnist_mlp", "kd", "logits", 0)].train.lr,
            rows[("fmnist_mlp", "dkd+dot", "logits", 0)].train.weight_decay) == (0.02, 0.05, 5e-4)
    # the teacher takes none of it; without a pair train the runs of the plain methods keep their hashes
    teacher = plan.entries[0]
    assert teacher.role == "teacher" and teacher.hash == plain.entries[0].hash
    assert plan.specs[teacher.hash].train.optimizer == "sgd"
    same = expand(load_recipe(dot_recipe(tmp_path, ckpt)), tmp_path)
    assert {e.hash for e in plain.entries} < {e.hash for e in same.entries}
    assert len(same.specs) == len(plain.specs) + 2 * 2 * (2 + 1)   # kd+dot at 2 levels, dkd+dot at 1


def test_runs_with_different_training_never_share_a_cohort(tmp_path, ckpt):
    """The trainer steps a cohort with one TrainConfig: kd and kd+dot go to different units, kd+dot and dkd+dot
    (both DOT, same settings) may share one."""
    path = dot_recipe(tmp_path, ckpt)
    path.write_text(path.read_text().replace("optimizer: dot, lr: 0.02", "optimizer: dot"))
    plan = expand(load_recipe(path), tmp_path)
    label = {e.hash: e.label for e in plan.entries}
    units = make_units(plan.specs, plan.hashes("student"), "auto")
    for unit in units:
        assert len({plan.specs[h].cohort_key() for h in unit}) == 1
        assert len({plan.specs[h].train.optimizer for h in unit}) == 1
    logits = [sorted(label[h] for h in u) for u in units
              if plan.specs[u[0]].access == "logits" and plan.specs[u[0]].seed == 0]
    assert sorted(logits) == [["dkd", "kd"], ["dkd", "kd"], ["dkd+dot", "kd+dot"], ["dkd+dot", "kd+dot"]]
    # two losses, which alone could share a cohort, do not once one of them trains with DOT
    kd = plan.specs[next(e.hash for e in plan.entries if e.label == "kd" and e.access == "logits")]
    dkd_dot = plan.specs[next(e.hash for e in plan.entries if e.label == "dkd+dot" and e.teacher == kd.teacher
                              and e.seed == kd.seed)]
    dkd = dataclasses.replace(dkd_dot, train=kd.train)
    assert make_units({"kd": kd, "dkd": dkd}, ["kd", "dkd"]) == [["kd", "dkd"]]
    assert make_units({"kd": kd, "dkd+dot": dkd_dot}, ["kd", "dkd+dot"]) == [["kd"], ["dkd+dot"]]


def test_hidden_labels_make_ce_pseudo_label_training(tmp_path, ckpt):
    plan = expand(load_recipe(recipe_file(tmp_path, ckpt, "student_data: {hide_labels: true}\n")), tmp_path)
    ce = [e for e in plan.entries if e.label == "ce"]
    assert {e.access for e in ce} == {"label"}
    spec = plan.specs[ce[0].hash]
    assert spec.teacher is not None and spec.hide_labels
    assert ce[0].hash != next(e for e in ce if e.teacher != ce[0].teacher).hash   # no longer shared


def test_student_shift_reaches_every_student_run_but_not_the_teacher(tmp_path, ckpt):
    plain = expand(load_recipe(recipe_file(tmp_path, ckpt)), tmp_path)
    plan = expand(load_recipe(recipe_file(tmp_path, ckpt, 'student_data: {student_shift: "rotate:25+noise:20"}\n')),
                  tmp_path)
    for e in plan.entries:
        expected = "" if e.role == "teacher" else "rotate:25+noise:20"
        assert plan.specs[e.hash].student_shift == expected, e
    # the teacher run is the same; every student run is a new one
    assert plan.entries[0].hash == plain.entries[0].hash
    assert not {e.hash for e in plan.entries[1:]} & {e.hash for e in plain.entries[1:]}


def test_cohorts(tmp_path, ckpt):
    plan = expand(load_recipe(recipe_file(tmp_path, ckpt)), tmp_path)
    students = plan.hashes("student")
    auto = make_units(plan.specs, students, "auto")
    assert sorted(len(u) for u in auto) == [1] * 2 + [1] * 4 + [2] * 4   # ce | kd@probs | kd+dkd@logits
    for unit in auto:
        assert len({plan.specs[h].cohort_key() for h in unit}) == 1
    assert all(len(u) == 1 for u in make_units(plan.specs, students, "off"))

    @kdzoo.register_loss("test_sweep_prepared")
    class Prepared(kdzoo.DistillLoss):
        requires = "logits"

        def preparation(self, ctx):
            return kdzoo.losses.base.Preparation("deprivatize")

    spec = plan.specs[students[1]]
    other = dataclasses.replace(spec, method="test_sweep_prepared", loss_kwargs={})
    assert can_share_cohort(spec) and not can_share_cohort(other)
    specs = {"a": spec, "b": other, "c": dataclasses.replace(spec, method="ce", loss_kwargs={}),
             "d": dataclasses.replace(spec, loss_kwargs={**spec.loss_kwargs, "temperature": 2.0})}
    # one loss twice in a cohort is not allowed (members are named by loss): "d" starts a second cohort
    assert make_units(specs, ["a", "b", "c", "d"]) == [["a", "c"], ["b"], ["d"]]


def test_unit_phases_train_teachers_alone_first_then_the_students_in_units(tmp_path, ckpt):
    plan = expand(load_recipe(recipe_file(tmp_path, ckpt)), tmp_path)
    teachers = plan.hashes("teacher")
    assert len(teachers) == 1                                 # fmnist_mlp is trained by the sweep, big is loaded
    phases = unit_phases(plan, cohort="auto")
    assert phases == [[[teachers[0]]], make_units(plan.specs, [h for h in plan.hashes() if h != teachers[0]])]
    assert sorted(h for u in phases[1] for h in u) == sorted(set(plan.hashes("student")) - set(teachers))
    some = plan.hashes()[::2]                                 # only the runs left to do, in the plan's order
    assert unit_phases(plan, some, "off") == [[[h] for h in some if h in teachers],
                                               [[h] for h in some if h not in teachers]]


def test_the_dry_run_shows_the_planners_units(tmp_path, ckpt, monkeypatch, capsys):
    """`kdzoo bench --dry-run` numbers the units the planner makes (plan.unit_phases), not a copy of its own."""
    from conftest import kdzoo_main as main
    calls = []
    real = plan_module.unit_phases

    def spy(plan, hashes=None, cohort="auto"):
        calls.append(cohort)
        return real(plan, hashes, cohort)
    monkeypatch.setattr(plan_module, "unit_phases", spy)
    path = recipe_file(tmp_path, ckpt)
    plan = expand(load_recipe(path), tmp_path / "out")
    students = [h for h in plan.hashes() if h not in plan.hashes("teacher")]
    for cohort in ("auto", "off"):
        units = 1 + len(make_units(plan.specs, students, cohort))     # the teacher alone, then the students
        assert main(["bench", str(path), "--out", str(tmp_path / "out"), "--dry-run", "--cohort", cohort]) == 0
        out = " ".join(capsys.readouterr().out.split())
        assert calls[-1] == cohort and f"in {units} units of work (cohort {cohort})" in out


def test_dataset_sizes_come_from_the_data_modules():
    """Every built-in dataset declares its training-split size (for estimates without loading it); the declared
    size of the dataset at hand is the size of the split kdzoo builds."""
    builtin = [n for n in kdzoo.DATASETS.names() if kdzoo.DATASETS.entry(n).source == "kdzoo"]
    assert "fashion-mnist" in builtin and all(train_size(n) for n in builtin)
    assert train_size("fashion-mnist") == len(kdzoo.data.build_dataset("fashion-mnist").train) == 60_000
    assert train_size("not-a-dataset") is None

    @kdzoo.register_dataset("test_sweep_sizeless")
    def sizeless(**kw):
        raise AssertionError("never built for an estimate")
    try:
        assert train_size("test_sweep_sizeless") is None
        assert estimate(RunSpec(dataset="test_sweep_sizeless", student="x")) == (None, None)
        assert estimate(RunSpec(dataset="test_sweep_sizeless", student="x", train=TrainConfig(epochs=1,
                        batch_size=10)), {"test_sweep_sizeless": 100}) == (100, 10)
    finally:
        kdzoo.DATASETS._entries.pop("test_sweep_sizeless")


def test_estimate():
    spec = RunSpec(dataset="fashion-mnist", student="fmnist_mlp", train=TrainConfig(epochs=2, batch_size=100),
                   train_fraction=0.5, val_size=1000)
    assert estimate(spec) == (2 * 29_000, 2 * 290)
    spec.train = TrainConfig(epochs=3, batch_size=100, steps_per_epoch=10)
    assert estimate(spec) == (3 * 1000, 30)
    assert estimate(RunSpec(dataset="unknown", student="x")) == (None, None)


# ---------------------------------------------------------------- hashes
def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.25
    if isinstance(value, str):
        return {"sgd": "adamw", "cosine": "step", "auto": "off", "logits": "probs"}.get(value, value + "x")
    if isinstance(value, dict):
        return {**value, "temperature": 3.0}
    if isinstance(value, list):
        return value + [7]
    if value is None:
        return 5
    raise AssertionError(value)


def base_spec() -> RunSpec:
    return RunSpec(dataset="fashion-mnist", student="fmnist_cnn_tiny", method="kd",
                   loss_kwargs={"temperature": 4.0}, teacher="fmnist_teacher", teacher_ckpt="t.pt",
                   teacher_run="abc123", train=TrainConfig(epochs=2))


def test_same_config_same_hash():
    """Equal specs hash alike, different ones apart, and the value itself is pinned: stored runs are found by
    it, so a change of the hashing (or a hash that ignores its input) must fail here. The literal is the
    hash this spec had when the test was written (kdzoo at 83c49d1)."""
    assert base_spec().config_hash() == base_spec().config_hash() == "037ce3ccc607c124"
    assert dataclasses.replace(base_spec(), seed=1).config_hash() == "d912c58830b88935"
    a = RunSpec.from_dict(base_spec().to_dict())
    assert a.config_hash() == base_spec().config_hash()
    assert dataclasses.replace(base_spec(), loss_kwargs={"temperature": 4.0}).config_hash() == base_spec().config_hash()


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RunSpec) if f.name not in ("train",)])
def test_any_changed_run_field_changes_the_hash(name):
    spec = base_spec()
    changed = dataclasses.replace(spec, **{name: _changed(getattr(spec, name))})
    if name == "teacher_ckpt":   # with a teacher run the run, not the file, identifies the teacher
        assert changed.config_hash() == spec.config_hash()
        spec, changed = (dataclasses.replace(s, teacher_run=None) for s in (spec, changed))
    assert changed.config_hash() != spec.config_hash(), name


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_any_changed_train_field_changes_the_hash(name):
    spec = base_spec()
    if name == "dot_delta":   # a setting of optimizer dot only (anything else refuses it)
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, optimizer="dot"))
    value = getattr(spec.train, name)
    new = {"device": "cpu", "amp": "off", "milestones": [1], "dot_delta": 0.05,
           "log": "tensorboard,mlflow"}.get(name, _changed(value))
    changed = dataclasses.replace(spec, train=dataclasses.replace(spec.train, **{name: new}))
    if name in TRAIN_NOT_HASHED:   # where a run executes and what logs it are not what it is
        assert changed.config_hash() == spec.config_hash()
    else:
        assert changed.config_hash() != spec.config_hash(), name


def test_teacher_file_content_is_hashed(tmp_path):
    path = tmp_path / "t.pt"
    path.write_bytes(b"one")
    spec = dataclasses.replace(base_spec(), teacher_ckpt=str(path), teacher_run=None)
    h1 = spec.config_hash()
    moved = tmp_path / "sub"
    moved.mkdir()
    (moved / "t.pt").write_bytes(b"one")
    assert dataclasses.replace(spec, teacher_ckpt=str(moved / "t.pt")).config_hash() == h1
    path.write_bytes(b"two")
    assert spec.config_hash() != h1


def test_plan_hashes_are_stable_across_expansions(tmp_path, ckpt):
    recipe = load_recipe(recipe_file(tmp_path, ckpt))
    a = expand(recipe, tmp_path / "out")
    b = expand(load_recipe(recipe_file(tmp_path, ckpt)), tmp_path / "out", device="cpu")
    assert [e.hash for e in a.entries] == [e.hash for e in b.entries]
    c = expand(load_recipe(recipe_file(tmp_path, ckpt).with_name("sweep.yaml")), tmp_path / "elsewhere")
    assert [e.hash for e in c.entries] == [e.hash for e in a.entries]   # the store's location is not hashed


# Methods whose computation changed on purpose after a result folder was made: their committed runs
# are not the recipe's any more (they get new hashes) until that folder is rerun. Issue 26: mlkd and
# crld make their strong view as the authors do, sdd pools as the authors' SPP.
RECOMPUTED = {"fashion_mnist": {"mlkd", "mlkd+ls", "crld", "sdd"}}


@pytest.mark.parametrize("name", ["quickstart", "fashion_mnist", "b2kd_fashion_mnist", "b2kd_fashion_mnist_shift"])
def test_committed_results_keep_their_run_hashes(tmp_path, name):
    """Settings added later (student_shift, cpu_threads, ema_decay, ...) must leave the hashes of runs
    that did not use them unchanged, or every committed result and every user's run store would be
    orphaned: the shipped recipes still expand to the hashes in their committed plan.json. A recipe may
    gain methods before its results are rerun, so the committed hashes need only be among the planned ones."""
    import json
    repo = Path(__file__).resolve().parents[1]
    plan = expand(load_recipe(repo / "recipes" / f"{name}.yaml"), tmp_path / "out")
    committed = json.loads((repo / "results" / name / "plan.json").read_text())
    # every committed run keeps its hash; a recipe may have grown (more seeds, a method variant) since
    # its results were made, which adds runs but must change none
    changed = RECOMPUTED.get(name, set())
    kept = {e["hash"] for e in committed["entries"] if e["method"] not in changed}
    assert kept <= {e.hash for e in plan.entries}
    if changed:   # ...and those methods' runs really are new (their settings now hash otherwise)
        old = {e["hash"] for e in committed["entries"] if e["method"] in changed}
        assert old and not old & {e.hash for e in plan.entries}
