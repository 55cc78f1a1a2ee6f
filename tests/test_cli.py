"""CLI: bad input gives one line on stderr and exit status 2; list and train work."""
import json

import pytest
import torch

import kdzoo

from conftest import kdzoo_main as main


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    """`kdzoo train` without --out writes runs/... under the working directory: keep it out of the checkout."""
    monkeypatch.chdir(tmp_path)


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """Make every dataset folder kdzoo searches empty."""
    import kdzoo.data.base as base
    monkeypatch.setattr(base, "candidate_roots", lambda data_root: [tmp_path / "empty"])


@pytest.fixture
def teacher_ckpt(tmp_path):
    torch.manual_seed(0)
    model = kdzoo.build_model("fmnist_mlp", num_classes=10)
    path = tmp_path / "teacher" / "model.pt"
    path.parent.mkdir()
    torch.save(model.state_dict(), path)
    (path.parent / "config.json").write_text(json.dumps({"student": "fmnist_mlp"}))
    return path


BAD = [
    (["train", "--student", "fmnist_mpl"], "unknown model 'fmnist_mpl'; did you mean 'fmnist_mlp'"),
    (["train", "--student", "fmnist_mlp", "--method", "kd2"], "unknown loss 'kd2'; did you mean 'kd'"),
    (["train", "--student", "fmnist_mlp", "--dataset", "fashion_mnist"], "did you mean 'fashion-mnist'"),
    (["train", "--student", "fmnist_mlp", "--method", "ce", "--set", "ce_wieght=2"], "did you mean 'ce_weight'"),
    (["train", "--student", "fmnist_mlp", "--set", "oops"], "--set expects KEY=VALUE"),
    (["train", "--student", "fmnist_mlp", "--teacher-ckpt", "/nonexistent/model.pt"],
     "teacher checkpoint not found: /nonexistent/model.pt"),
    (["train", "--student", "fmnist_mlp", "--teacher", "fmnist_teacher"], "--teacher needs --teacher-ckpt"),
    (["train", "--student", "fmnist_mlp", "--epochs", "0"], "epochs must be a positive integer"),
    (["train", "--student", "fmnist_mlp", "--batch-size", "-4"], "batch_size must be a positive integer"),
    (["train", "--student", "fmnist_mlp", "--optimizer", "adma"], "optimizer 'adma'"),
    (["train", "--student", "fmnist_mlp", "--epochs", "two"], "invalid int value: 'two'"),
    (["list", "loses"], "invalid choice: 'loses'"),
    (["trian"], "invalid choice: 'trian'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_prints_one_line_and_exits_2(capsys, argv, message):
    rc, out, err = run(capsys, *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kdzoo: error: ")
    assert message in lines[0]
    assert "Traceback" not in err


def test_missing_data_is_one_sentence(capsys, no_data):
    rc, out, err = run(capsys, "train", "--student", "fmnist_mlp", "--epochs", "1")
    assert rc == 2
    (line,) = err.strip().splitlines()
    assert "fashion-mnist not found under" in line and "KDZOO_DATA" in line and "--data-root" in line


def test_teacher_with_wrong_classes_or_bad_file(capsys, teacher_ckpt, tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"not a checkpoint")
    rc, _, err = run(capsys, "train", "--student", "fmnist_mlp", "--teacher", "fmnist_mlp", "--teacher-ckpt", str(bad),
                     "--epochs", "1", "--out", str(tmp_path / "r1"))
    assert rc == 2 and "cannot read checkpoint" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(capsys, "train", "--student", "fmnist_mlp", "--teacher", "fmnist_teacher",
                     "--teacher-ckpt", str(teacher_ckpt), "--epochs", "1", "--out", str(tmp_path / "r2"))
    assert rc == 2 and "does not fit the model" in err and "missing keys" in err


def test_access_refusal_is_one_line(capsys, teacher_ckpt, tmp_path):
    @kdzoo.register_loss("test_needs_logits", overwrite=True)
    class NeedsLogits(kdzoo.DistillLoss):
        requires = "logits"

        def forward(self, s, t, y, *, epoch=1, **batch):  # pragma: no cover
            raise AssertionError

    rc, _, err = run(capsys, "train", "--student", "fmnist_mlp", "--teacher-ckpt", str(teacher_ckpt),
                     "--method", "test_needs_logits", "--access", "label", "--epochs", "1", "--out", str(tmp_path / "r"))
    assert rc == 2
    assert "loss 'test_needs_logits' needs teacher access 'logits'" in err and "'label'" in err


def test_list_losses_fits_the_terminal_points_to_the_docs_and_wide_shows_papers(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = run(capsys, "list", "losses")
    assert rc == 0
    assert max(len(line) for line in out.splitlines()) <= 80
    rows = {line.split()[0]: line for line in out.splitlines() if line[:1].strip()}   # a row's first line
    assert "2022 CVPR" in rows["dkd"] and "probs" in rows["dkd"] and "temperature=4.0" in rows["dkd"]
    assert "2015 NIPS-W" in rows["kd+ls"] and "label" in rows["kd+ls"]
    assert "1503.02531" not in out and "--wide" in out and "docs/methods.md" in out
    monkeypatch.setenv("COLUMNS", "220")
    rc, out, _ = run(capsys, "list", "losses", "--wide")
    assert rc == 0 and "1503.02531" in out and "Zhao et al., CVPR 2022" in out and "source" in out
    assert 100 < max(len(line) for line in out.splitlines()) <= 220


def test_train_then_distill_end_to_end(capsys, tmp_path, teacher_ckpt):
    """A short real distillation run on Fashion-MNIST writes every file and the result."""
    out = tmp_path / "student"
    rc, stdout, err = run(capsys, "train", "--student", "fmnist_mlp", "--teacher-ckpt", str(teacher_ckpt),
                          "--epochs", "2", "--steps-per-epoch", "5", "--out", str(out), "--no-progress")
    assert rc == 0, err
    assert "finished: fmnist_mlp kd" in stdout
    for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "model.pt", "result.json"):
        assert (out / name).is_file(), name
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "finished" and result["epochs"] == 2
    assert result["teacher_queries"] == 60000  # responses cached: one query per training image
    assert 0 <= result["top1"] <= 100 and result["teacher_top1"] > 0
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert set(metrics[0]["train"]) == {"ce", "kd"}
