"""Recipes: a valid one parses; malformed ones give one-line errors naming the file, key path and line."""
from __future__ import annotations

from pathlib import Path

import pytest

from kdzoo.bench.recipe.plugins import expand_vars
from kdzoo.bench.recipe.parse import load_recipe, parse_recipe
from kdzoo.bench.recipe.types import MethodEntry, PairEntry, Recipe, SlurmSettings, StudentData, TeacherEntry
from kdzoo.errors import ConfigError

PLUGIN = Path(__file__).with_name("bench_plugin.py")

BASE = f"""\
name: tiny
dataset: bench-synth
plugins: [{PLUGIN}]
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 16}}}}
pairs:
  - {{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}
methods:
  - ce
  - kd
  - {{name: kd, label: kd-T2, args: {{temperature: 2}}}}
access: [logits]
seeds: [0, 1]
train: {{epochs: 1, batch_size: 16, lr: 0.05}}
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_valid_recipe_parses(tmp_path):
    r = load_recipe(write(tmp_path, BASE + "student_data: {train_fraction: 0.5, val_size: 100}\n"
                                          "metric: top1_at_best_val\n"
                                          "slurm: {partition: gpu, time_min: 30}\n"))
    assert r.name == "tiny" and r.dataset == "bench-synth" and r.seeds == [0, 1]
    assert [m.label for m in r.methods] == ["ce", "kd", "kd-T2"]
    assert r.methods[2].args == {"temperature": 2.0} and isinstance(r.methods[2].args["temperature"], float)
    assert r.teachers["fmnist_mlp"].train == {"epochs": 1, "batch_size": 16}
    assert r.student_data.train_fraction == 0.5 and r.metric == "top1_at_best_val"
    assert r.slurm.partition == "gpu" and r.slurm.time_min == 30
    assert r.plugins == [str(PLUGIN.resolve())]


def test_no_ranking_on_an_epoch_picked_on_the_test_split(tmp_path):
    with pytest.raises(ConfigError, match=r"metric: best_top1 picks each run's epoch on the test split; rank on top1"):
        load_recipe(write(tmp_path, BASE + "metric: best_top1\n"))
    with pytest.raises(ConfigError, match="top1_at_best_val needs a validation split: set student_data.val_size"):
        load_recipe(write(tmp_path, BASE + "metric: top1_at_best_val\n"))


def test_yaml_float_strings_and_env_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("KDZOO_T", str(tmp_path / "t"))
    monkeypatch.delenv("KDZOO_UNSET", raising=False)
    assert expand_vars("${KDZOO_T}/a.pt") == f"{tmp_path}/t/a.pt"
    assert expand_vars("${KDZOO_UNSET:-teachers}/a.pt") == "teachers/a.pt"
    with pytest.raises(KeyError):
        expand_vars("${KDZOO_UNSET}/a.pt")
    text = BASE.replace("lr: 0.05", "lr: 5e-2, weight_decay: 5e-4").replace(
        "fmnist_mlp: {train: {epochs: 1, batch_size: 16}}", "fmnist_mlp: {ckpt: \"${KDZOO_T}/m.pt\"}")
    r = load_recipe(write(tmp_path, text))
    assert r.train["lr"] == 0.05 and r.train["weight_decay"] == 5e-4
    assert r.teachers["fmnist_mlp"].ckpt == str(tmp_path / "t" / "m.pt")


def _line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


# (replace this, with that, expected key path, marker on the expected line, words in the message)
MALFORMED = [
    ("seeds: [0, 1]", "seed: [0, 1]", "seed", "seed: [0, 1]", "did you mean 'seeds'"),
    ("  - kd\n", "  - kdd\n", "methods[1]", "- kdd", "unknown loss 'kdd'; did you mean 'kd'"),
    ("args: {temperature: 2}", "args: {temprature: 2}", "methods[2].args.temprature", "temprature",
     "did you mean 'temperature'"),
    ("args: {temperature: 2}", "args: {temperature: -1}", "methods[2].args.temperature", "temperature: -1",
     "temperature must be > 0"),
    ("args: {temperature: 2}", "args: {temperature: hot}", "methods[2].args.temperature", "hot", "number"),
    ("dataset: bench-synth", "dataset: bench-synt", "dataset", "dataset:", "did you mean 'bench-synth'"),
    ("student: fmnist_cnn_tiny", "student: fmnist_cnn_tiy", "pairs[0].student", "fmnist_cnn_tiy",
     "did you mean 'fmnist_cnn_tiny'"),
    ("{teacher: fmnist_mlp, student", "{teacher: fmnist_mpl, student", "pairs[0].teacher", "fmnist_mpl",
     "did you mean 'fmnist_mlp'"),
    ("access: [logits]", "access: [logit]", "access[0]", "access:", "did you mean 'logits'"),
    ("access: [logits]", "access: [logits, topk:0]", "access[1]", "access:", "positive K"),
    ("  - kd\n", "  - {name: dkd, access: [label]}\n", "methods[1].access[0]", "dkd", "needs teacher access 'probs'"),
    ("access: [logits]", "access: [label]\nmethods_extra: 1", "methods_extra", "methods_extra",
     "unknown key"),
    ("train: {epochs: 1, batch_size: 16, lr: 0.05}", "train: {epochs: 0, batch_size: 16, lr: 0.05}",
     "train.epochs", "epochs: 0", "epochs must be a positive integer"),
    ("train: {epochs: 1, batch_size: 16, lr: 0.05}", "train: {epochs: 1, batch_size: 16, lr_rate: 0.05}",
     "train.lr_rate", "lr_rate", "unknown training setting"),
    ("train: {epochs: 1, batch_size: 16, lr: 0.05}", "train: {epochs: 1, batch_size: 16, lr: fast}",
     "train.lr", "lr: fast", "expected a number"),
    ("seeds: [0, 1]", "seeds: []", "seeds", "seeds:", "at least one seed"),
    ("seeds: [0, 1]", "seeds: [0, zero]", "seeds[1]", "seeds:", "expected an integer"),
    ("seeds: [0, 1]", "seeds: [0, 0]", "seeds[1]", "seeds:", "listed twice"),
    ("label: kd-T2", "label: kd", "methods[2].label", "label: kd", "used twice"),
    ("fmnist_mlp: {train: {epochs: 1, batch_size: 16}}", "fmnist_mlp: {ckpt: a.pt, train: {epochs: 1}}",
     "teachers.fmnist_mlp", "fmnist_mlp: {ckpt", "exactly one of"),
    ("fmnist_mlp: {train: {epochs: 1, batch_size: 16}}", "fmnist_mlp: {ckpt: \"${KDZOO_SURELY_UNSET}/a.pt\"}",
     "teachers.fmnist_mlp.ckpt", "KDZOO_SURELY_UNSET", "KDZOO_SURELY_UNSET is not set"),
    ("name: tiny", "name: tiny\nstudent_data: {train_fraction: 1.5}", "student_data.train_fraction",
     "train_fraction", "must be <= 1"),
    ("name: tiny", "name: tiny\nstudent_data: {student_shift: \"rotate:25+nois:20\"}", "student_data.student_shift",
     "student_shift", "did you mean 'noise'"),
    ("name: tiny", "name: tiny\nreference:\n  - {teacher: resnet56, student: resnet20, method: kd, top1: 70.66, "
     "source: paper}", "reference[0]", "resnet56", "no pair resnet56 -> resnet20"),
    ("{teacher: fmnist_mlp, student: fmnist_cnn_tiny}", "{teacher: fmnist_mlp, student: fmnist_cnn_tiny, "
     "method_args: {kdT2: {temperature: 3}}}", "pairs[0].method_args.kdT2", "kdT2", "did you mean 'kd-T2'"),
    ("name: tiny", "name: tiny\nslurm: {partition: gpu, gpus: 2}", "slurm.gpus", "gpus: 2",
     "did you mean 'gpus_per_job'"),
    # a method entry's train block: the same checks as the recipe's and a pair's
    ("args: {temperature: 2}}", "args: {temperature: 2}, train: {optimiser: dot}}", "methods[2].train.optimiser",
     "optimiser", "unknown training setting 'optimiser'; did you mean 'optimizer'"),
    ("args: {temperature: 2}}", "args: {temperature: 2}, train: {optimizer: dott}}", "methods[2].train.optimizer",
     "dott", "did you mean 'dot'"),
    ("args: {temperature: 2}}", "args: {temperature: 2}, train: {seed: 3}}", "methods[2].train.seed",
     "seed: 3", "set seeds with the recipe's 'seeds' list"),
    ("args: {temperature: 2}}", "args: {temperature: 2}, train: {optimizer: dot, dot_delta: 0.2}}",
     "methods[2].train.dot_delta", "dot_delta", "must lie in [0, 1)"),
    # the combination is checked too: the recipe's grad_clip cannot go with a method's DOT
    ("lr: 0.05}", "lr: 0.05, grad_clip: 1.0}\n", "methods[2].train.optimizer", "kd-T2",
     "optimizer dot does not support grad_clip"),
    ("{teacher: fmnist_mlp, student: fmnist_cnn_tiny}", "{teacher: fmnist_mlp, student: fmnist_cnn_tiny, "
     "train: {grad_clip: 1.0}}", "methods[2].train.optimizer", "kd-T2",
     "set grad_clip: 0 (with pairs[0].train, fmnist_mlp -> fmnist_cnn_tiny; "
     "a method's setting wins over the pair's)"),
]


METHOD_DOT = BASE.replace("args: {temperature: 2}}", "args: {temperature: 2}, train: {optimizer: dot}}")


@pytest.mark.parametrize("old,new,key,marker,words", MALFORMED, ids=[m[2] + ":" + m[4][:20] for m in MALFORMED])
def test_malformed_recipe_gives_one_line_with_path_and_line(tmp_path, old, new, key, marker, words):
    base = METHOD_DOT if "grad_clip" in new else BASE   # the combination cases: kd-T2 trains with DOT
    assert old in base
    text = base.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{_line_of(text, marker)}: {key}: "), msg
    assert words in msg, msg


def test_yaml_syntax_error_and_duplicate_key(tmp_path):
    text = BASE.replace("seeds: [0, 1]", "seeds: [0, 1")
    with pytest.raises(ConfigError, match=r"recipe.yaml:\d+: invalid YAML"):
        load_recipe(write(tmp_path, text))
    text = BASE + "seeds: [3]\n"
    with pytest.raises(ConfigError) as info:
        load_recipe(write(tmp_path, text))
    assert f":{len(text.splitlines())}: duplicate key 'seeds'" in str(info.value)


def test_missing_required_key_and_wrong_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"recipe.yaml:1: missing required key 'pairs'"):
        load_recipe(write(tmp_path, "\n".join(l for l in BASE.splitlines() if "pairs:" not in l and "teacher:" not in l)))
    with pytest.raises(ConfigError, match=r"recipe.yaml:\d+: methods: expected a list, got a mapping"):
        load_recipe(write(tmp_path, BASE.replace("methods:\n", "methods: {ce: 1}\nmethods_list:\n")
                          .replace("methods_list:\n  - ce\n  - kd\n  - {name: kd, label: kd-T2, args: {temperature: 2}}\n",
                                   "")))


def test_failing_plugin_is_named(tmp_path):
    (tmp_path / "broken.py").write_text("raise ImportError('no module named torchy')\n")
    text = BASE.replace(f"plugins: [{PLUGIN}]", f"plugins: [{PLUGIN}, broken.py]")
    with pytest.raises(ConfigError) as info:
        load_recipe(write(tmp_path, text))
    assert str(info.value).startswith(f"{tmp_path / 'recipe.yaml'}:3: plugins[1]: cannot import plugin 'broken.py': "
                                      "ImportError: no module named torchy")
    with pytest.raises(ConfigError, match=r"plugins\[1\]: plugin file not found"):
        load_recipe(write(tmp_path, BASE.replace(f"plugins: [{PLUGIN}]", f"plugins: [{PLUGIN}, missing.py]")))
    with pytest.raises(ConfigError, match=r"plugins\[1\]: cannot import plugin 'no_such_module_xyz'"):
        load_recipe(write(tmp_path, BASE.replace(f"plugins: [{PLUGIN}]", f"plugins: [{PLUGIN}, no_such_module_xyz]")))


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from conftest import kdzoo_main as main
    path = write(tmp_path, BASE.replace("  - kd\n", "  - kdd\n", 1))
    assert main(["bench", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == (f"kdzoo: error: {path}:{_line_of(BASE, '  - kd')}: methods[1]: unknown loss 'kdd'; "
                   f"did you mean 'kd'? (kdzoo list losses)")


def test_parse_recipe_from_text():
    """Every field of the parsed recipe, written out: a validator that drops or alters a value fails."""
    r = parse_recipe(BASE, source="inline.yaml", base_dir=".")
    assert r == Recipe(
        name="tiny", dataset="bench-synth",
        teachers={"fmnist_mlp": TeacherEntry(name="fmnist_mlp", model="fmnist_mlp", ckpt=None,
                                             train={"epochs": 1, "batch_size": 16}, augment=False, seed=0)},
        pairs=[PairEntry(teacher="fmnist_mlp", student="fmnist_cnn_tiny", method_args={}, train={})],
        methods=[MethodEntry(loss="ce", label="ce", args={}, access=None),
                 MethodEntry(loss="kd", label="kd", args={}, access=None),
                 MethodEntry(loss="kd", label="kd-T2", args={"temperature": 2.0}, access=None)],
        description="", access=["logits"], seeds=[0, 1], train={"epochs": 1, "batch_size": 16, "lr": 0.05},
        student_data=StudentData(), metric="top1", plugins=[str(PLUGIN.resolve())], reference=[],
        slurm=SlurmSettings(), path="inline.yaml", text=BASE)


MCLD_L2 = BASE.replace("  - {name: kd, label: kd-T2, args: {temperature: 2}}\n",
                       "  - {name: mcld, label: mcld-l2, args: {normalize: l2}}\n").replace(
    "  - kd\n", "  - {name: kd, access: [probs]}\n").replace("access: [logits]", "access: [probs]")


def test_mcld_l2_at_probs_is_refused_at_validation(tmp_path, capsys):
    """mcld with normalize: l2 needs raw logits (its instance says so, not its class): a recipe running it at
    access probs is refused by the recipe check, one line, exit 2, before anything loads."""
    from conftest import kdzoo_main as main
    path = write(tmp_path, MCLD_L2)
    assert main(["bench", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"kdzoo: error: {path}:{_line_of(MCLD_L2, '  - {name: mcld')}: methods[2]: loss 'mcld-l2' needs "
                   f"teacher access 'logits' or richer, but the teacher gives 'probs'; pick a loss that works with "
                   f"that or give more access (give this method its own 'access' list)")
    # the same method at logits, and mcld's default normalization at probs, are fine
    load_recipe(write(tmp_path, MCLD_L2.replace("access: [probs]", "access: [logits]")))
    load_recipe(write(tmp_path, MCLD_L2.replace("args: {normalize: l2}", "args: {normalize: zscore}")))


def test_mcld_l2_from_a_pair_override_is_refused(tmp_path):
    text = MCLD_L2.replace("args: {normalize: l2}", "args: {}").replace(
        "student: fmnist_cnn_tiny}", "student: fmnist_cnn_tiny, method_args: {mcld: {normalize: l2}}}")
    with pytest.raises(ConfigError, match=r"pairs\[0\]\.method_args\.mcld: loss 'mcld-l2' needs teacher access "
                                          r"'logits' or richer, but the teacher gives 'probs'"):
        load_recipe(write(tmp_path, text))


def test_method_train_block(tmp_path):
    """A method entry's ``train`` is kept as written (coerced), apart from the recipe's and the pairs'; a
    setting valid only on top of another block's (dot_delta under the recipe's optimizer dot) is accepted,
    and a pair that skips the method is not combined with it."""
    r = load_recipe(write(tmp_path, METHOD_DOT.replace("{optimizer: dot}", "{optimizer: dot, dot_delta: 5e-2}")))
    assert [m.train for m in r.methods] == [{}, {}, {"optimizer": "dot", "dot_delta": 0.05}]
    assert r.train == {"epochs": 1, "batch_size": 16, "lr": 0.05} and r.pairs[0].train == {}
    assert r.student_train(r.pairs[0], r.methods[2]) == {**r.train, "optimizer": "dot", "dot_delta": 0.05}
    text = BASE.replace("lr: 0.05}", "lr: 0.05, optimizer: dot}").replace(
        "args: {temperature: 2}}", "args: {temperature: 2}, train: {dot_delta: 0.05}}")
    assert load_recipe(write(tmp_path, text)).methods[2].train == {"dot_delta": 0.05}
    with pytest.raises(ConfigError, match=r"methods\[2\]\.train\.dot_delta: dot_delta is a setting of optimizer dot"):
        load_recipe(write(tmp_path, BASE.replace("args: {temperature: 2}}",
                                                 "args: {temperature: 2}, train: {dot_delta: 0.05}}")))
    skipping = METHOD_DOT.replace("{teacher: fmnist_mlp, student: fmnist_cnn_tiny}",
                                  "{teacher: fmnist_mlp, student: fmnist_cnn_tiny, train: {grad_clip: 1.0}, "
                                  "skip: [kd-T2]}")
    assert load_recipe(write(tmp_path, skipping)).pairs[0].train == {"grad_clip": 1.0}
