"""Student-side distribution shifts: named, seeded, applied to the student's training split only."""
import pytest
import torch

import kdzoo
from kdzoo.bench.execution.run import load_bundle
from kdzoo.bench.spec import RunSpec
from kdzoo.data.shifts import apply_shift, parse_shift

from conftest import make_bundle

kdzoo.register_dataset("shift-synth", lambda data_root=None, val_size=0, seed=0, augment=False:
                       make_bundle(n_train=40, n_test=20, size=12, channels=3), overwrite=True)


@pytest.mark.parametrize("spec", ["brightness:40", "contrast:0.5", "gamma:0.6", "rotate:25", "noise:20", "invert",
                                  "rotate:25+noise:20", "contrast:0.6+brightness:-30"])
def test_each_shift_is_deterministic_and_changes_the_images(spec):
    split = make_bundle(n_train=40, size=12, channels=3).train
    a, b = apply_shift(split, spec), apply_shift(split, spec)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, split.labels)
    assert a.images.dtype == torch.uint8 and a.images.shape == split.images.shape
    assert not torch.equal(a.images, split.images)


def test_shift_values_and_seeds():
    split = make_bundle(n_train=8, size=8).train
    assert torch.equal(apply_shift(split, "invert").images, 255 - split.images)
    assert torch.equal(apply_shift(split, "brightness:10").images,
                       (split.images.int() + 10).clamp(0, 255).to(torch.uint8))
    assert not torch.equal(apply_shift(split, "rotate:30", seed=0).images, apply_shift(split, "rotate:30", seed=1).images)
    assert torch.equal(apply_shift(split, "rotate:0").images, split.images)


@pytest.mark.parametrize("bad,match", [("rotat:20", "did you mean 'rotate'"), ("rotate", "needs a value"),
                                       ("invert:2", "takes no value"), ("noise:lots", "not a number"),
                                       ("gamma:0", "positive")])
def test_bad_shift_names(bad, match):
    with pytest.raises(kdzoo.ConfigError, match=match):
        apply_shift(make_bundle(n_train=4).train, bad)
    if match != "positive":
        with pytest.raises(kdzoo.ConfigError):
            parse_shift(bad)


def test_run_spec_shift_touches_only_the_student_training_split():
    plain = RunSpec(dataset="shift-synth", student="fmnist_mlp", train_fraction=0.5)
    shifted = RunSpec(dataset="shift-synth", student="fmnist_mlp", train_fraction=0.5, student_shift="rotate:25")
    assert "student_shift" not in plain.to_dict()                 # unset: earlier run hashes stay valid
    assert plain.config_hash() != shifted.config_hash()
    assert RunSpec.from_dict(shifted.to_dict()) == shifted
    a, b = load_bundle(plain, None), load_bundle(shifted, None)
    assert torch.equal(a.train.labels, b.train.labels) and not torch.equal(a.train.images, b.train.images)
    assert torch.equal(b.train.images, apply_shift(a.train, "rotate:25").images)
    assert torch.equal(a.test.images, b.test.images)              # evaluation stays on the clean distribution
