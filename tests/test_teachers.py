"""Teacher access levels: what each reveals, query accounting, budgets, refusal of losses that need more."""
import pytest
import torch
from torch import nn

import kdzoo
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.data import make_loader
from kdzoo.losses.base import DistillLoss
from kdzoo.teachers import ACCESS_RANK, Teacher, check_access, parse_access

from conftest import make_bundle

C = 7


class Counting(nn.Module):
    """Identity on (N, C) "images", counting the rows it is run on: the teacher's logits are its input."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return x


def _logits(n=32, seed=0):
    return torch.randn(n, C, generator=torch.Generator().manual_seed(seed)) * 3


def _same_top(z, k, seed=1):
    """Other logits with the same top-k probabilities (values and classes) but different other classes."""
    p = torch.softmax(z, 1)
    idx = p.topk(k, 1).indices
    q, g = p.clone(), torch.Generator().manual_seed(seed)
    for i in range(len(p)):
        rest = [c for c in range(C) if c not in idx[i].tolist()]
        vals = p[i, rest][torch.randperm(len(rest), generator=g)]
        q[i, rest] = 0.5 * vals + 0.5 * vals.mean()     # shuffled and flattened: same mass, each below the top-k
    assert not torch.allclose(q, p)
    return q.log() + torch.randn(z.shape[0], 1)          # and a per-row shift


def test_logits_access_returns_the_logits():
    z = _logits()
    assert torch.equal(Teacher(Counting(), "logits")(z), z)


def test_probs_access_reveals_exactly_the_probabilities():
    z = _logits()
    out = Teacher(Counting(), "probs")(z)
    torch.testing.assert_close(out.exp(), torch.softmax(z, 1))
    torch.testing.assert_close(out.logsumexp(1), torch.zeros(len(z)), atol=1e-5, rtol=0)
    # a per-row shift of the logits (invisible in the probabilities) changes nothing
    torch.testing.assert_close(Teacher(Counting(), "probs")(z + torch.randn(len(z), 1) * 10), out)


def test_label_access_reveals_only_the_top1():
    z = _logits()
    out = Teacher(Counting(), "label")(z)
    # any logits with the same argmax give the very same rows
    other = torch.randn(z.shape) * 5
    other.scatter_(1, z.argmax(1, keepdim=True), 100.0)
    assert torch.equal(Teacher(Counting(), "label")(other), out)
    assert torch.equal(out, Teacher.one_hot(z.argmax(1), C))
    # one-hot at any temperature used in practice (exp(-1e4 / T) is below 1e-38 up to T = 100)
    for temperature in (1.0, 4.0, 100.0):
        p = torch.softmax(out / temperature, 1)
        assert (p - torch.nn.functional.one_hot(z.argmax(1), C)).abs().max() < 1e-38
    assert set(out.unique().tolist()) == {0.0, -1e4}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_topk_access_reveals_only_k_values(k):
    z = _logits()
    teacher = Teacher(Counting(), f"topk:{k}")
    out = teacher(z)
    p, q = torch.softmax(z, 1), out.exp()
    top, idx = p.topk(k, 1)
    torch.testing.assert_close(q.gather(1, idx), top)                          # the k values, exactly
    rest = torch.ones_like(p, dtype=torch.bool).scatter_(1, idx, False)
    spread = q[rest].view(len(z), C - k)
    torch.testing.assert_close(spread, spread[:, :1].expand_as(spread))          # the rest: one value per row
    torch.testing.assert_close(q.sum(1), torch.ones(len(z)))
    # other logits with the same top-k give the same rows
    torch.testing.assert_close(teacher(_same_top(z, k)), out, rtol=1e-4, atol=1e-4)  # float round trips


def test_topk_with_k_at_least_classes_is_probs():
    z = _logits()
    torch.testing.assert_close(Teacher(Counting(), f"topk:{C + 3}")(z).exp(), torch.softmax(z, 1))


def test_query_count_equals_images_sent_and_internal_calls_are_free():
    model = Counting()
    teacher = Teacher(model, "probs")
    for n in (3, 5, 7):
        teacher(_logits(n))
    assert teacher.queries == 15 == model.seen
    teacher.raw_logits(_logits(4))                 # kdzoo's own evaluation: not a query
    assert teacher.queries == 15


def test_budget_is_enforced_before_the_model_runs():
    model = Counting()
    teacher = Teacher(model, "label", budget=10)
    teacher(_logits(6))
    assert teacher.remaining == 4
    with pytest.raises(kdzoo.AccessError, match=r"budget exceeded: 6 of 10 images used, 5 more requested"):
        teacher(_logits(5))
    assert teacher.queries == 6 == model.seen      # the refused query cost nothing and never ran
    teacher(_logits(4))
    assert teacher.remaining == 0
    with pytest.raises(kdzoo.AccessError):
        teacher(_logits(1))
    with pytest.raises(kdzoo.ConfigError, match="budget"):
        Teacher(Counting(), budget=-1)


def test_budget_stops_training_with_a_clear_error():
    bundle = make_bundle(n_train=48)
    torch.manual_seed(0)
    teacher = Teacher(kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=8),
                      access="probs", budget=40)
    student = kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=8)
    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", cache_teacher=False)
    trainer = Trainer([Member("kd", student, kdzoo.build_loss("kd"))], make_loader(bundle, "train", 16, train=True),
                      {}, teacher, cfg, progress=False)
    with pytest.raises(kdzoo.AccessError, match="budget"):
        trainer.fit()
    assert teacher.queries == 32


def test_teacher_answers_in_eval_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(C, C), nn.Dropout(0.5))
    teacher = Teacher(model, "logits")
    x = _logits()
    first = teacher(x)
    model.train()                                  # someone flips it back
    assert torch.equal(teacher(x), first)


class NeedsLogits(DistillLoss):
    requires = "logits"

    def forward(self, s, t, y, *, epoch=1, **batch):  # pragma: no cover - must never run
        raise AssertionError("trained despite refusal")


@pytest.mark.parametrize("access", ["probs", "topk:3", "label"])
def test_loss_needing_logits_is_refused_before_training(access, tmp_path):
    # through the run executor: refused before any data, model or teacher is loaded
    name = "mse"   # a registered loss needing raw logits
    assert kdzoo.build_loss(name).requires == "logits"
    from kdzoo.bench.execution.run import execute
    from kdzoo.bench.spec import RunSpec
    spec = RunSpec(dataset="no-such-data-needed", student="fmnist_mlp", method=name, teacher="fmnist_teacher",
                   teacher_ckpt=str(tmp_path / "missing.pt"), access=access)
    with pytest.raises(kdzoo.AccessError, match=rf"loss '{name}' needs teacher access 'logits'.*'{access}'"):
        execute(spec, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    # and by the trainer itself
    bundle = make_bundle(n_train=16)
    teacher = Teacher(Counting(), access)
    member = Member("needs_logits", kdzoo.build_model("fmnist_mlp", num_classes=4, in_channels=1, image_size=8),
                    NeedsLogits())
    trainer = Trainer([member], make_loader(bundle, "train", 8, train=True), {}, teacher,
                      TrainConfig(epochs=1, device="cpu"), progress=False)
    with pytest.raises(kdzoo.AccessError, match="needs_logits"):
        trainer.fit()
    assert teacher.queries == 0


# which access each need accepts, written out (features > logits > probs > topk > label > none), not read
# from ACCESS_RANK
ACCEPTS = {"features": {"features"}, "logits": {"features", "logits"}, "probs": {"features", "logits", "probs"},
           "topk": {"features", "logits", "probs", "topk:5"},
           "label": {"features", "logits", "probs", "topk:5", "label"},
           "none": {"features", "logits", "probs", "topk:5", "label", "none"}}


def test_access_levels_are_the_documented_ones():
    assert sorted(ACCESS_RANK) == sorted(ACCEPTS)


@pytest.mark.parametrize("requires", list(ACCEPTS))
@pytest.mark.parametrize("access", ["features", "logits", "probs", "topk:5", "label", "none"])
def test_access_matrix(requires, access):
    if access not in ACCEPTS[requires]:
        with pytest.raises(kdzoo.AccessError, match=f"'{requires}'"):
            check_access("some_loss", requires, access)
    else:
        check_access("some_loss", requires, access)


@pytest.mark.parametrize("bad", ["prob", "topk", "topk:0", "topk:x", "label:3", ""])
def test_bad_access_names(bad):
    with pytest.raises(kdzoo.ConfigError):
        parse_access(bad)


def test_kd_from_probs_equals_kd_from_logits_and_label_kd_is_hard_kd():
    z, s = _logits(16, seed=3), _logits(16, seed=4)
    y = z.argmax(1)
    kd = kdzoo.build_loss("kd", temperature=4.0)
    a = kd(s, Teacher(Counting(), "logits")(z), y)
    b = kd(s, Teacher(Counting(), "probs")(z), y)
    torch.testing.assert_close(a["kd"], b["kd"])
    # label access: kd's teacher is one-hot, so its term is T^2 * CE(s / T, top-1)
    c = kd(s, Teacher(Counting(), "label")(z), y)
    ref = 0.9 * 16 * torch.nn.functional.cross_entropy(s / 4.0, y)
    torch.testing.assert_close(c["kd"], ref)


@pytest.mark.parametrize("layout", ["orig_mod", "model_state_dict", "orig_mod_under_model_state_dict"])
def test_teacher_checkpoint_of_a_compiled_or_wrapped_model_loads(tmp_path, layout):
    """A teacher saved from a torch.compile'd model (keys '_orig_mod.*') or under 'model_state_dict' loads as a
    teacher, through the same loader as students and transfer (bench/run.py used to refuse both)."""
    from kdzoo.bench.execution.run import load_teacher_weights

    saved = kdzoo.build_model("fmnist_mlp", num_classes=10, in_channels=1, image_size=(28, 28))
    sd = saved.state_dict()
    if "orig_mod" in layout:
        sd = {f"_orig_mod.{k}": v for k, v in sd.items()}
    obj = {"model_state_dict": sd, "epoch": 3} if "model_state_dict" in layout else sd
    torch.save(obj, tmp_path / "teacher.pt")
    fresh = kdzoo.build_model("fmnist_mlp", num_classes=10, in_channels=1, image_size=(28, 28))
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), saved.state_dict().values()))
    load_teacher_weights(fresh, str(tmp_path / "teacher.pt"))
    for key, value in saved.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_execute_refuses_mcld_l2_at_probs_before_loading_anything(tmp_path):
    """The run's own check reads ``requires`` from the built loss: with a missing dataset and teacher file,
    the access error comes first (nothing was loaded)."""
    from kdzoo.bench.execution.run import execute
    from kdzoo.bench.spec import RunSpec
    spec = RunSpec(dataset="no-such-dataset", student="fmnist_mlp", method="mcld", loss_kwargs={"normalize": "l2"},
                   teacher="fmnist_mlp", teacher_ckpt=str(tmp_path / "missing.pt"), access="probs")
    with pytest.raises(kdzoo.AccessError, match="loss 'mcld' needs teacher access 'logits' or richer"):
        execute(spec, None, progress=False)
