"""Bad input catalogue: each malformed input prints one line on stderr and exits 2; ``--debug`` shows the traceback.

These cases extend, and do not repeat, the 13 + 4 cases of tests/test_cli.py
(misspelt model/loss/dataset/hyperparameter names, ``--set`` without ``=``, a
missing teacher checkpoint, ``--teacher`` without a checkpoint, zero epochs,
negative batch size, unknown optimizer, a non-integer epoch count, unknown
command / list kind, missing data, garbage and mismatching teacher files, access
refusal). Both files together form the catalogue.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import kdzoo
from conftest import kdzoo_main as main, make_bundle


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    """`kdzoo train` without --out writes runs/... under the working directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


PLUGIN = Path(__file__).resolve().parent / "reliability_plugin.py"


# ------------------------------------------------------------------ fixtures
def _tiny(channels: int, size: int, classes: int = 4):
    def factory(data_root=None, *, val_size=0, seed=0, augment=False, download=False, **_):
        """Tiny synthetic images (bad-input tests)."""
        return make_bundle(n_train=32, n_test=16, classes=classes, size=size, channels=channels,
                           val_size=val_size, split_seed=seed, name=f"badinput-{channels}x{size}")
    return factory


kdzoo.register_dataset("badinput-1x8", _tiny(1, 8), overwrite=True)
kdzoo.register_dataset("badinput-3x8", _tiny(3, 8), overwrite=True)
kdzoo.register_dataset("badinput-1x2", _tiny(1, 2), overwrite=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Teacher checkpoints and odd files the cases refer to as {name}."""
    root = tmp_path_factory.mktemp("bad")

    def teacher(name: str, **kw) -> str:
        torch.manual_seed(0)
        model = kdzoo.build_model("fmnist_cnn_tiny", **kw)
        folder = root / name
        folder.mkdir()
        torch.save(model.state_dict(), folder / "model.pt")
        (folder / "config.json").write_text(json.dumps({"student": "fmnist_cnn_tiny"}))
        return str(folder / "model.pt")

    paths = {
        "tmp": str(root),
        "t4": teacher("t4", num_classes=4, in_channels=1, image_size=(8, 8)),        # fits badinput-1x8
        "t10": teacher("t10", num_classes=10, in_channels=1, image_size=(8, 8)),     # other class count
        "tensor": str(root / "tensor.pt"),
        "afile": str(root / "afile"),
    }
    torch.save(torch.zeros(3), paths["tensor"])
    Path(paths["afile"]).write_text("a regular file, not a folder\n")
    return paths


def expect_one_line(capsys, argv: list[str], message: str) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kdzoo: error: "), lines[0]
    assert "Traceback" not in err
    assert message in lines[0], lines[0]
    return lines[0]


def expect_debug_traceback(argv: list[str]) -> None:
    """With --debug the same input raises, so Python prints the full traceback."""
    with pytest.raises((kdzoo.KdzooError, OSError)):
        main(["--debug", *argv])


def check(capsys, argv, message):
    line = expect_one_line(capsys, argv, message)
    expect_debug_traceback(argv)
    return line


# ------------------------------------------------------------ kdzoo train
T = ["train", "--student", "fmnist_cnn_tiny", "--dataset", "badinput-1x8", "--no-progress", "--epochs", "1"]
TT = T + ["--teacher-ckpt", "{t4}"]     # with a fitting teacher

TRAIN_CASES = [
    # wrong values / types of training settings
    ("lr-nan", T + ["--lr", "nan"], "lr must be a finite number"),
    ("lr-negative", T + ["--lr", "-0.1"], "lr must be > 0"),
    ("weight-decay-negative", T + ["--weight-decay", "-1"], "weight_decay must be >= 0"),
    ("warmup-negative", T + ["--warmup-epochs", "-2"], "warmup_epochs must be >= 0"),
    ("steps-per-epoch-zero", T + ["--steps-per-epoch", "0"], "steps_per_epoch must be a positive integer"),
    ("epochs-negative", T[:-1] + ["-3"], "epochs must be a positive integer"),
    ("batch-size-zero", T + ["--batch-size", "0"], "batch_size must be a positive integer"),
    ("schedule-misspelt", T + ["--schedule", "cosin"], "did you mean 'cosine'"),
    ("amp-unknown", T + ["--amp", "fp8"], "amp 'fp8' is not one of"),
    ("device-unknown", T + ["--device", "tpu"], "device 'tpu' is not a device"),
    ("device-bad-index", T + ["--device", "cuda:abc"], "device 'cuda:abc' is not a device"),
    ("milestones-not-int", T + ["--milestones", "a"], "invalid int value: 'a'"),
    ("val-size-too-large", T + ["--val-size", "32"], "val_size 32.0 leaves no training images"),
    ("unknown-flag", T + ["--lr-rate", "3"], "unrecognized arguments: --lr-rate"),
    # loss hyperparameters of the wrong type
    ("hparam-string-for-number", TT + ["--set", "temperature=abc"], "loss 'kd': temperature must be a number"),
    ("hparam-list-for-number", TT + ["--set", "temperature=[1, 2]"], "temperature must be a number, got [1, 2]"),
    ("hparam-bool-for-number", T + ["--set", "ce_weight=true"], "ce_weight must be a number, got True"),
    # teacher access levels
    ("access-misspelt", TT + ["--access", "logts"], "unknown teacher access 'logts'; did you mean 'logits'"),
    ("access-topk-zero", TT + ["--access", "topk:0"], "needs a positive K"),
    ("access-without-teacher", T + ["--access", "probs"], "--access and --teacher-budget need a teacher"),
    ("budget-without-teacher", T + ["--teacher-budget", "100"], "--access and --teacher-budget need a teacher"),
    ("budget-zero", TT + ["--teacher-budget", "0"], "--teacher-budget must be a positive number"),
    ("method-needs-teacher", T + ["--method", "kd"], "needs teacher access"),
    # checkpoints and models that do not fit
    ("teacher-other-class-count", T + ["--teacher-ckpt", "{t10}"], "does not fit the model"),
    ("teacher-other-channels", T[:4] + ["badinput-3x8"] + T[5:] + ["--teacher-ckpt", "{t4}"],
     "does not fit the model"),
    ("teacher-ckpt-not-a-state-dict", T + ["--teacher", "fmnist_cnn_tiny", "--teacher-ckpt", "{tensor}"],
     "does not hold a state dict"),
    ("teacher-ckpt-is-a-folder", T + ["--teacher", "fmnist_cnn_tiny", "--teacher-ckpt", "{tmp}"],
     "teacher checkpoint not found"),
    ("student-cannot-take-image-size", ["train", "--student", "vgg11", "--dataset", "badinput-1x2", "--epochs", "1"],
     "model 'vgg11' cannot take badinput-1x2 images (1x2x2)"),
    ("timm-model-unknown", T[:2] + ["timm:no_such_net"] + T[3:], "unknown timm model 'no_such_net'"),
    # output folder
    ("out-under-a-file", T + ["--steps-per-epoch", "1", "--out", "{afile}/run"], "Not a directory: "),
]


@pytest.mark.parametrize("argv,message", [c[1:] for c in TRAIN_CASES], ids=[c[0] for c in TRAIN_CASES])
def test_train_bad_input(capsys, files, argv, message):
    check(capsys, [a.format(**files) for a in argv], message)


# ------------------------------------------------------------ plugins through entry points
# (a plugin that fails to import is reported and skipped: tests/test_store_inputs.py)


# ------------------------------------------------------------ kdzoo bench / kdzoo leaderboard
# (tests/test_bench_recipe.py covers misspelt names, unknown keys, bad seeds/labels/args, YAML syntax errors,
#  duplicate keys and plugins that are missing or raise ImportError; these are the rest.)
RECIPE = {
    "name": "bad", "dataset": "reltest-tiny", "plugins": f"[{PLUGIN}]",
    "teachers": "{fmnist_cnn_tiny: {train: {epochs: 1, batch_size: 16}}}",
    "pairs": "[{teacher: fmnist_cnn_tiny, student: fmnist_mlp}]",
    "methods": "[ce, kd]", "seeds": "[0]", "train": "{epochs: 1, batch_size: 16}",
}


def recipe_text(**override) -> str:
    d = {**RECIPE, **override}
    return "".join(f"{k}: {v}\n" for k, v in d.items() if v is not None)


BENCH_CASES = [
    # YAML that would run code, or is not a recipe at all
    ("yaml-python-object-apply", recipe_text(name="!!python/object/apply:os.system ['touch {tmp}/pwned']"),
     "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    ("yaml-python-name", recipe_text(train="!!python/name:os.system"), "python/name:os.system"),
    ("yaml-top-level-list", "- dataset: reltest-tiny\n- methods: [ce]\n", "expected a mapping"),
    ("yaml-empty-file", "", "missing required key 'dataset'"),
    ("yaml-tab-indent", "name: bad\n\tdataset: reltest-tiny\n", "invalid YAML"),
    ("recipe-not-utf8", b"\xff\xfe\x00name: x", "cannot read recipe"),
    # wrong types and values
    ("plugins-not-a-list", recipe_text(plugins=str(PLUGIN)), "plugins: expected a list"),
    ("epochs-a-string", recipe_text(train="{epochs: ten}"), "train.epochs: expected an integer, got 'ten'"),
    ("batch-size-negative", recipe_text(train="{batch_size: -1}"), "train.batch_size: batch_size must be a positive"),
    ("lr-nan", recipe_text(train="{lr: .nan}"), "train.lr: lr must be a finite number"),
    ("teacher-epochs-zero", recipe_text(teachers="{fmnist_cnn_tiny: {train: {epochs: 0}}}"),
     "epochs must be a positive integer"),
    # output paths that would leave the output folder
    ("name-with-dotdot", recipe_text(name="../escape"), "name: '../escape' must be a plain file name"),
    ("name-absolute", recipe_text(name="/tmp/escape"), "name: '/tmp/escape' must be a plain file name"),
    # plugins
    ("plugin-syntax-error", recipe_text(plugins=f"[{PLUGIN}, {{tmp}}/syntax_plugin.py]"),
     "cannot import plugin '{tmp}/syntax_plugin.py': SyntaxError"),
    ("plugin-registers-existing-name", recipe_text(plugins=f"[{PLUGIN}, {{tmp}}/dup_plugin.py]"),
     "ConfigError: loss 'kd' is already registered by kdzoo"),
]


@pytest.fixture(scope="module")
def bench_files(files):
    root = Path(files["tmp"])
    (root / "syntax_plugin.py").write_text("def broken(:\n")
    (root / "dup_plugin.py").write_text("import kdzoo\n\n\n@kdzoo.register_loss('kd')\nclass K(kdzoo.DistillLoss):\n"
                                        "    pass\n")
    return files


def _fill(text: str, names: dict) -> str:
    """Replace {name} placeholders (YAML braces elsewhere in the text stay as they are)."""
    for key, value in names.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def _bench(tmp: Path, name: str, text: str | bytes, files: dict) -> list[str]:
    path = tmp / f"{name}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text.replace("{tmp}", files["tmp"]))
    return ["bench", str(path), "--out", str(tmp / f"out-{name}"), "--device", "cpu", "--no-progress"]


@pytest.mark.parametrize("text,message", [c[1:] for c in BENCH_CASES], ids=[c[0] for c in BENCH_CASES])
def test_bench_bad_recipe(capsys, bench_files, tmp_path, text, message):
    argv = _bench(tmp_path, "r", text, bench_files)
    check(capsys, argv + ["--dry-run"], message.replace("{tmp}", bench_files["tmp"]))
    assert not (Path(bench_files["tmp"]) / "pwned").exists()


def test_bench_yaml_tags_never_run_code(bench_files, tmp_path):
    """The safe loader refuses every python/* tag, so no recipe can run code except through 'plugins'."""
    from kdzoo.bench.recipe.parse import parse_recipe
    for tag in ("!!python/object/apply:os.system ['true']", "!!python/object/new:os.system ['true']",
                "!!python/object:os.system {}", "!!python/module:os", "!!python/name:os.system"):
        with pytest.raises(kdzoo.ConfigError, match="could not determine a constructor"):
            parse_recipe(recipe_text(description=tag), source="r.yaml")


# cases that pass the recipe check and fail in the preflight (before anything trains)
PREFLIGHT_CASES = [
    ("teacher-ckpt-missing", dict(teachers="{fmnist_cnn_tiny: {ckpt: {tmp}/nope.pt}}"), {},
     "teacher checkpoint for 'fmnist_cnn_tiny' not found"),
    ("teacher-ckpt-not-a-state-dict", dict(teachers="{fmnist_cnn_tiny: {ckpt: {tensor}}}"), {},
     "does not hold a state dict"),
    ("teacher-other-class-count", dict(teachers="{fmnist_cnn_tiny: {ckpt: {t10}}}"), {}, "does not fit the model"),
    ("teacher-other-channels", dict(teachers="{fmnist_cnn_tiny: {ckpt: {t4}}}"), {"KDZOO_RELTEST_CHANNELS": "3"},
     "does not fit the model"),
    ("student-cannot-take-image-size", dict(pairs="[{teacher: fmnist_cnn_tiny, student: vgg11}]"),
     {"KDZOO_RELTEST_SIZE": "2"}, "model 'vgg11' cannot take reltest-tiny images (1x2x2)"),
]


@pytest.mark.parametrize("override,env,message", [c[1:] for c in PREFLIGHT_CASES],
                         ids=[c[0] for c in PREFLIGHT_CASES])
def test_bench_preflight(capsys, bench_files, tmp_path, monkeypatch, override, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    text = recipe_text(**{k: _fill(v, bench_files) for k, v in override.items()})
    argv = _bench(tmp_path, "r", text, bench_files)
    check(capsys, argv, message)
    assert not (tmp_path / "out-r" / "runs").exists()        # refused before any run started


def test_bench_missing_data(capsys, bench_files, tmp_path, monkeypatch):
    import kdzoo.data.base as base
    monkeypatch.setattr(base, "candidate_roots", lambda data_root: [tmp_path / "empty"])
    text = recipe_text(dataset="fashion-mnist", plugins=None, teachers="{fmnist_mlp: {train: {epochs: 1}}}",
                       pairs="[{teacher: fmnist_mlp, student: fmnist_cnn_tiny}]")
    check(capsys, _bench(tmp_path, "r", text, bench_files), "fashion-mnist not found under")


OTHER_CASES = [
    ("recipe-is-a-folder", ["bench", "{tmp}"], "recipe not found"),
    ("workers-zero", ["bench", "{recipe}", "--workers", "0"], "--workers must be at least 1"),
    ("slurm-flags-without-slurm", ["bench", "{recipe}", "--partition", "gpu", "--time-min", "5"],
     "--partition, --time-min: Slurm options, given without --launcher slurm"),
    ("workers-with-slurm", ["bench", "{recipe}", "--launcher", "slurm", "--workers", "4"],
     "--workers applies to --launcher local"),
    ("cohort-unknown", ["bench", "{recipe}", "--cohort", "sometimes"], "invalid choice: 'sometimes'"),
    ("bench-device-unknown", ["bench", "{recipe}", "--device", "tpu", "--out", "{tmp}/o-dev"],
     "device 'tpu' is not a device"),
    ("bench-out-under-a-file", ["bench", "{recipe}", "--out", "{afile}/out"], "Not a directory: "),
    ("leaderboard-no-folder", ["leaderboard", "{tmp}/nowhere"], "no such folder"),
    ("leaderboard-not-a-bench-folder", ["leaderboard", "{tmp}"], "holds no plan.json"),
    ("leaderboard-corrupt-plan", ["leaderboard", "{badplan}"], "plan.json is truncated or corrupt"),
    ("leaderboard-foreign-plan", ["leaderboard", "{foreignplan}"], "plan.json is not a kdzoo plan (KeyError"),
]


@pytest.mark.parametrize("argv,message", [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES])
def test_bench_and_leaderboard_flags(capsys, bench_files, tmp_path, argv, message):
    recipe = tmp_path / "ok.yaml"
    recipe.write_text(recipe_text())
    for name, text in (("badplan", '{"entries": ['), ("foreignplan", '{"entries": []}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "plan.json").write_text(text)
    names = {**bench_files, "recipe": str(recipe), "badplan": str(tmp_path / "badplan"),
             "foreignplan": str(tmp_path / "foreignplan")}
    check(capsys, [a.format(**names) for a in argv] + (["--no-progress"] if argv[0] == "bench" else []), message)
