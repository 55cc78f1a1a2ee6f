"""``kdzoo train``: options derived from TrainConfig (each default written once), help that shows defaults and
points to the documentation, names in any case, and validation before anything is written (issue 25, items
5 and 8; issue 26, item 3)."""
from __future__ import annotations

import dataclasses

import pytest

from kdzoo import list_models
from kdzoo.cli import build_parser
from kdzoo.engine import TrainConfig
from kdzoo.errors import ConfigError
from kdzoo.registry import MODELS

from conftest import FMNIST, REPO, kdzoo_main

needs_fmnist = pytest.mark.skipif(FMNIST is None, reason="Fashion-MNIST files not present")


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["train"]


def test_every_training_option_is_a_trainconfig_field_with_its_default():
    """A CLI default that differs from the config's (a literal re-typed in argparse) fails here."""
    args = build_parser().parse_args(["train", "--student", "fmnist_mlp"])
    config = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        assert getattr(args, f.name) == getattr(config, f.name), f.name
        assert f.metadata.get("help"), f"TrainConfig.{f.name} has no help"
    options = {s for a in _train_parser()._actions for s in a.option_strings}
    expected = {"--" + f.name.replace("_", "-") if f.default is not True else "--no-" + f.name.replace("_", "-")
                for f in dataclasses.fields(TrainConfig)}
    assert expected <= options


def test_training_options_reach_the_config():
    args = build_parser().parse_args(["train", "--student", "fmnist_mlp", "--epochs", "3", "--no-cache-teacher",
                                      "--milestones", "2", "4", "--schedule", "step", "--steps-per-epoch", "5",
                                      "--nesterov", "--dot-delta", "0.05"])
    from kdzoo.cli.options import dataclass_values

    values = dataclass_values(args, TrainConfig)
    assert (values["epochs"], values["cache_teacher"], values["milestones"], values["steps_per_epoch"],
            values["nesterov"], values["dot_delta"]) == (3, False, [2, 4], 5, True, 0.05)


def test_help_shows_defaults_and_points_to_the_docs(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")            # one option per line, to read them one by one
    with pytest.raises(SystemExit):
        kdzoo_main(["train", "--help"])
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip().startswith("--")}
    for option, default in (("--epochs", "10"), ("--lr", "0.05"), ("--batch-size", "128"), ("--seed", "0"),
                            ("--dataset", "fashion-mnist"), ("--dot-delta", "0.075"), ("--cpu-threads", "1")):
        assert f"(default {default})" in lines[option], lines[option]
    assert "(default" not in lines["--compile"]        # a flag that is off says nothing
    assert "default on" in lines["--no-cache-teacher"]
    with pytest.raises(SystemExit):
        kdzoo_main(["--help"])
    text = capsys.readouterr().out
    assert "README.md" in text and "docs/methods.md" in text and "recipes/README.md" in text
    with pytest.raises(SystemExit):
        kdzoo_main(["compare", "--help"])
    text = capsys.readouterr().out
    assert "95%" in text and "%%" not in text


def test_model_names_in_any_case():
    list_models()                                       # the built-in models register when first listed
    assert MODELS.canonical("MobileNetV2") == "mobilenetv2" and MODELS.canonical("ResNet50") == "resnet50"
    assert MODELS.canonical("fmnist_mlp") == "fmnist_mlp"
    with pytest.raises(ConfigError, match="did you mean 'shufflenetv1'"):
        MODELS.canonical("ShuffleV1")


def test_a_typo_leaves_no_folder_and_the_default_out_stays_free(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for argv in (["--student", "fmnist_cnn_smal"], ["--student", "fmnist_mlp", "--method", "kd2"],
                 ["--student", "fmnist_mlp", "--set", "temprature=2"], ["--student", "fmnist_mlp", "--lr", "-1"],
                 ["--student", "fmnist_mlp", "--dataset", "fasion-mnist"]):
        assert kdzoo_main(["train", *argv, "--epochs", "1"]) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("kdzoo: error: "), err
        assert list(tmp_path.iterdir()) == [], argv         # no runs/ folder, nothing at all


def test_an_out_that_is_a_file_is_one_clear_line(capsys, tmp_path):
    (tmp_path / "taken").write_text("")
    for argv in (["train", "--student", "fmnist_mlp"], ["bench", str(REPO / "recipes" / "quickstart.yaml")]):
        assert kdzoo_main([*argv, "--out", str(tmp_path / "taken")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a file; give a folder" in err, err


@needs_fmnist
def test_a_typo_found_while_building_writes_nothing_and_its_retry_runs(capsys, tmp_path):
    """A model name only the build can check (a torchvision name) is refused after the data loads but before
    the run folder exists, so the corrected command with the same --out is not 'a run with other settings'.
    The corrected name may use any case."""
    out = tmp_path / "run"
    common = ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16", "--no-progress", "--out", str(out)]
    assert kdzoo_main(["train", "--student", "tv:resnet_typo", *common]) == 2
    assert "unknown torchvision model 'resnet_typo'" in capsys.readouterr().err
    assert not out.exists()
    assert kdzoo_main(["train", "--student", "FMNIST_CNN_TINY", *common]) == 0
    assert "finished: fmnist_cnn_tiny ce" in capsys.readouterr().out
    assert (out / "result.json").is_file()
