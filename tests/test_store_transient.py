"""A full disk is not a verdict: transient failures leave a run unfinished, and a plain rerun finishes it.

The full disk is injected two ways, both in this process (the sweep runs with one worker):
``fsync`` of the teacher's checkpoint fails with ENOSPC (as a filesystem reports it when the
data reaches the disk), or the free-space check sees an almost full filesystem. Either way
the run is left without a result (status interrupted, not failed), the students waiting for
that teacher stay pending, the message names the file and says to run the same command
again, and that plain rerun ends with the leaderboard of a sweep that never failed.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from kdzoo.bench.runner import run_bench
from kdzoo.errors import StorageError
from kdzoo.utils import atomic as atomic_mod
from kdzoo.utils import atomic_write_bytes, atomic_write_text

from conftest import kdzoo_main as main
from reliability_harness import bench_argv, leaderboard, write_recipe


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("transient-ref")
    recipe = write_recipe(root, seeds=(0,), name="reltransient")
    run_bench(recipe, root / "out", device="cpu", progress=False)
    return {"recipe": recipe, "rows": leaderboard(root / "out")}


def _fsync_fails_for(name: str, times: int = 1, skip: int = 0):
    """os.fsync that raises ENOSPC for the temporary files of ``name`` (``times`` times, after letting
    ``skip`` through), else syncs."""
    real, left = os.fsync, [skip, times]

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if re.fullmatch(rf"\.{re.escape(name)}\.[^.]+\.tmp", os.path.basename(target)):
            if left[0] > 0:
                left[0] -= 1
            elif left[1] > 0:
                left[1] -= 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)
    return fsync


def _statuses(out: Path) -> dict[str, str]:
    return {r["label"]: r["status"] for r in leaderboard(out)}


def _bench(recipe: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    rc = main(bench_argv(recipe, out, *extra))
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_enospc_on_the_teachers_checkpoint_leaves_it_interrupted_and_a_plain_rerun_finishes(
        tmp_path, reference, capsys, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", _fsync_fails_for("checkpoint.pt", skip=1))   # the disk fills in epoch 2
    rc, text = _bench(reference["recipe"], out, capsys)
    monkeypatch.undo()
    assert rc == 1
    statuses = _statuses(out)
    assert statuses["teacher"] == "interrupted" and "failed" not in statuses.values()
    assert statuses["kd"] == "pending"                       # waits for its teacher, not blocked
    assert {statuses[k] for k in ("ce", "count")} == {"finished"}   # runs without the teacher went on
    teacher = next(r["config_hash"] for r in leaderboard(out) if r["role"] == "teacher")
    assert not (out / "runs" / teacher / "result.json").exists() and (out / "runs" / teacher / "checkpoint.pt").exists()
    line = next(x for x in text.splitlines() if x.startswith("interrupted teacher"))
    assert "checkpoint.pt: No space left on device" in line and "run the same command again" in line
    assert "did not finish (see the lines above): run the same command again" in text
    assert "--retry-failed" not in text

    rc, text = _bench(reference["recipe"], out, capsys)       # space is back: the same command, no flag
    assert rc == 0, text
    assert leaderboard(out) == reference["rows"]


def test_a_nearly_full_disk_is_named_before_the_checkpoint_is_written(tmp_path, reference, capsys, monkeypatch):
    out = tmp_path / "out"
    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage
    monkeypatch.setattr(atomic_mod.shutil, "disk_usage",
                        lambda p: usage(10 ** 9, 10 ** 9 - 1000, 1000) if "runs" in str(p) else real(p))
    rc, text = _bench(reference["recipe"], out, capsys)
    monkeypatch.undo()
    assert rc == 1
    assert _statuses(out)["teacher"] == "interrupted"
    line = next(x for x in text.splitlines() if x.startswith("interrupted teacher"))
    assert "not enough free space to write" in line and "checkpoint.pt" in line and "0.0 MB are free" in line
    rc, _ = _bench(reference["recipe"], out, capsys)
    assert rc == 0 and leaderboard(out) == reference["rows"]


def test_a_student_cohort_stopped_by_a_full_disk_is_not_split_into_failed_runs(tmp_path, reference, capsys,
                                                                              monkeypatch):
    """The disk fills once the teacher is done: every student's model.pt write fails. The cohorts are
    left unfinished (not retried one by one into failed results), and the rerun resumes them."""
    out = tmp_path / "out"
    monkeypatch.setattr(os, "fsync", _fsync_fails_for("model.pt", times=1_000, skip=1))   # 1: the teacher's
    rc, text = _bench(reference["recipe"], out, capsys)
    monkeypatch.undo()
    assert rc == 1 and "cohort failed" not in text
    statuses = _statuses(out)
    assert statuses.pop("teacher") == "finished"
    assert set(statuses.values()) == {"interrupted"}, statuses
    rc, text = _bench(reference["recipe"], out, capsys)
    assert rc == 0, text
    assert leaderboard(out) == reference["rows"]


def test_kdzoo_train_on_a_full_disk_says_which_file_and_that_the_same_command_resumes(tmp_path, capsys,
                                                                                     monkeypatch):
    from reliability_harness import PLUGIN  # registers reltest-tiny
    from kdzoo.bench.recipe.plugins import import_plugin
    import_plugin(str(PLUGIN))
    argv = ["train", "--dataset", "reltest-tiny", "--student", "fmnist_mlp", "--epochs", "2", "--batch-size", "16",
            "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")]
    monkeypatch.setattr(os, "fsync", _fsync_fails_for("checkpoint.pt"))
    rc = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    (line,) = [x for x in err if x.startswith("kdzoo: error")]
    assert f"cannot write {tmp_path / 'run' / 'checkpoint.pt'}: No space left on device" in line
    assert "run the same command to resume" in line
    assert main(argv) == 0


# ---------------------------------------------------------------------------- the atomic write itself
def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old\n")
    monkeypatch.setattr(os, "fsync", _fsync_fails_for("f.json"))
    with pytest.raises(StorageError) as caught:
        atomic_write_text(target, "new\n")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert str(caught.value) == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_a_large_write_checks_the_free_space_first(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(atomic_mod.shutil, "disk_usage", lambda p: usage(10 ** 9, 10 ** 9 - 2_000_000, 2_000_000))
    atomic_write_bytes(tmp_path / "small", b"x" * 1000)             # small writes are not checked
    with pytest.raises(StorageError, match=r"not enough free space to write .*big: it needs 3\.0 MB, 2\.0 MB"):
        atomic_write_bytes(tmp_path / "big", b"x" * 3_000_000)
    assert not (tmp_path / "big").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["small"]
