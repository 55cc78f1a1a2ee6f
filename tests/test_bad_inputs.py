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
import textwrap
from pathlib import Path

import pytest
import torch

import kdzoo
from kdzoo.cli import main
from kdzoo.data.base import DataBundle, TensorSplit

PLUGIN = Path(__file__).resolve().parent / "reliability_plugin.py"


# ------------------------------------------------------------------ fixtures
def _tiny(channels: int, size: int, classes: int = 4):
    def factory(data_root=None, *, val_size=0, seed=0, augment=False, download=False, **_):
        """Tiny random images (bad-input tests)."""
        g = torch.Generator().manual_seed(0)

        def split(n):
            return TensorSplit(torch.randint(0, 255, (n, channels, size, size), generator=g, dtype=torch.uint8),
                               torch.randint(0, classes, (n,), generator=g))
        from kdzoo.data.base import split_train_val
        train, val = split_train_val(split(32), val_size, seed)
        return DataBundle(name=f"badinput-{channels}x{size}", train=train, test=split(16), val=val,
                          num_classes=classes, in_channels=channels, image_size=(size, size),
                          mean=(0.3,) * channels, std=(0.3,) * channels)
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
def test_entry_point_plugin_that_fails_to_import(capsys, monkeypatch):
    from importlib import metadata

    from kdzoo.registry import LOSSES

    class BrokenEP:
        name, value = "broken", "not_a_module_kdzoo_test:thing"

        def load(self):
            raise ModuleNotFoundError("No module named 'not_a_module_kdzoo_test'")

    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: [BrokenEP()] if kw.get("group") == "kdzoo.losses" else real(**kw))
    monkeypatch.setattr(LOSSES, "_plugins_loaded", False)
    expect_one_line(capsys, ["list", "losses"], "plugin entry point 'broken' (not_a_module_kdzoo_test:thing) of "
                                                "group 'kdzoo.losses' failed to import")
    monkeypatch.setattr(LOSSES, "_plugins_loaded", False)
    expect_debug_traceback(["list", "losses"])
