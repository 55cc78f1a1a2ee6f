"""Progress: bars that fit 80 columns with counts and ETAs, movement inside an epoch, a resume line, log lines
without bars, and the dry run's time estimate (issue 16, item 4)."""
from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

import kdzoo
from kdzoo.bench.runner import run_bench
from kdzoo.data import make_loader
from kdzoo.engine import Member, Trainer, TrainConfig
from kdzoo.engine.progress import Progress

from conftest import FMNIST, make_bundle, kdzoo_main as main

TIME = r"\d+:\d\d:\d\d"


def _terminal(width: int = 80) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def _rendered(progress: Progress, width: int = 80) -> list[str]:
    """The bars as an 80-column terminal shows them (one frame)."""
    out = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    bar = progress._bar
    out.print(bar.make_tasks_table(bar.tasks))
    return [line for line in out.export_text().splitlines() if line.strip()]


def test_bars_fit_80_columns_with_count_elapsed_and_eta():
    p = Progress(console=_terminal())
    with p:
        p.sweep = p.task("sweep 3/15 runs", total=4_700_000)
        run = p.task("epoch 3/10 s0 ce,kd,dkd,rld,mcld fmnist_teacher→fmnist_cnn_tiny", total=4_700)
        for _ in range(5):
            p.step(run, 128 * 5)
        lines = _rendered(p)
    assert len(lines) == 2
    for line in lines:
        assert len(line) <= 80, line
        assert re.search(rf"{TIME} eta {TIME}$", line), line       # elapsed, then the ETA: both visible
    assert lines[0].startswith("sweep 3/15 runs") and "3200/4.7M" in lines[0]
    assert lines[1].startswith("epoch 3/10 s0 ce,kd,dkd,rld,") and "…" in lines[1] and "5/4700" in lines[1]


class _Recorder(Progress):
    """Counts what the trainer reports: steps and images inside each epoch."""

    def __init__(self):
        super().__init__(enabled=False, lines=True, console=_terminal())
        self.steps, self.images, self.descriptions, self.lines_printed = 0, 0, [], []

    def describe(self, task, description):
        self.descriptions.append(description)

    def step(self, task, images):
        self.steps += 1
        self.images += images

    def print(self, message):
        self.lines_printed.append(message)


def _fit(bundle, run_dir, epochs, progress):
    torch.manual_seed(0)
    student = kdzoo.build_model("fmnist_cnn_tiny", num_classes=4, in_channels=1)
    members = [Member("ce", student, kdzoo.build_loss("ce"), run_dir=run_dir, seed=0)]
    train = make_loader(bundle, "train", 16, train=True, seed=0)
    test = {"test": make_loader(bundle, "test", 64, train=False)}
    cfg = TrainConfig(epochs=epochs, batch_size=16, device="cpu")
    return Trainer(members, train, test, None, cfg, progress=progress).fit()


@pytest.mark.filterwarnings("ignore::kdzoo.engine.recovery.RecoveryWarning")   # metrics.jsonl is one epoch ahead
def test_trainer_moves_inside_epochs_and_says_where_it_resumes(tmp_path):
    bundle = make_bundle(n_train=64)        # 4 steps of 16 per epoch
    rec = _Recorder()
    _fit(bundle, tmp_path / "run", 2, rec)
    assert rec.steps == 8 and rec.images == 128
    assert rec.descriptions == ["epoch 1/2 ce", "epoch 2/2 ce"]
    assert [l.split(":")[0] for l in rec.lines_printed] == ["ce epoch 1/2", "ce epoch 2/2"]   # one line per epoch
    # as if killed during epoch 2: the checkpoint of epoch 1 is the newest
    run = tmp_path / "run"
    for suffix in ("", ".sha256"):
        shutil.copy(run / f"checkpoint.prev.pt{suffix}", run / f"checkpoint.pt{suffix}")
    rec = _Recorder()
    _fit(bundle, run, 2, rec)
    assert rec.lines_printed[0] == f"ce: resuming from epoch 1 of 2 ({run})"
    assert rec.steps == 4 and rec.descriptions == ["epoch 2/2 ce"]


def _recipe(tmp_path: Path, seeds: str = "[0]") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"""\
name: prog
dataset: fashion-mnist
teachers:
  fmnist_mlp: {{train: {{epochs: 1, batch_size: 64, steps_per_epoch: 3}}}}
pairs: [{{teacher: fmnist_mlp, student: fmnist_cnn_tiny}}]
methods: [ce, kd]
seeds: {seeds}
student_data: {{train_fraction: 0.01}}
train: {{epochs: 2, batch_size: 64, steps_per_epoch: 2}}
""")
    return path


def test_sweep_on_an_80_column_terminal_and_dry_run_eta(tmp_path, capsys):
    if FMNIST is None:
        pytest.skip("Fashion-MNIST files not present")
    console = _terminal()
    frames: list[list[str]] = []
    shown = Progress.step

    def capture(self, task, images):       # one frame of the live display at every step
        shown(self, task, images)
        if self._bar is not None:
            frames.append(_rendered(self))

    Progress.step = capture
    try:
        report = run_bench(_recipe(tmp_path), tmp_path / "out", console=console)
    finally:
        Progress.step = shown
    assert report.ok and frames
    for frame in frames:
        assert len(frame) == 2 and all(len(line) <= 80 for line in frame), frame
        assert frame[0].startswith("sweep ") and all(re.search(rf"eta ({TIME}|-:--:--)$", l) for l in frame)
    assert frames[0][1].startswith("epoch 1/1 teacher fmnist_mlp")
    assert any(f[1].startswith("epoch 2/2 kd fmnist_mlp→fmnis…") for f in frames)
    assert any(re.search(rf"eta {TIME}$", f[0]) for f in frames)       # the sweep's ETA, once speed is measured
    # a dry run of more seeds: the work left is timed from the runs just made with the same models
    capsys.readouterr()
    assert main(["bench", str(_recipe(tmp_path, "[0, 1, 2]")), "--out", str(tmp_path / "out"), "--dry-run",
                 "--workers", "2"]) == 0
    raw = capsys.readouterr().out
    assert max(len(line) for line in raw.splitlines()) <= 80
    out = " ".join(raw.split())
    m = re.search(r"estimated time left: .* of training in one process, about .* with 2 workers \(speed of earlier "
                  r"runs of the same models\)", out)
    assert m, out


def test_no_progress_keeps_one_line_per_epoch(tmp_path, capsys):
    rc = main(["bench", str(_recipe(tmp_path)), "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 0
    # the teacher's one epoch, then two for each student
    assert len(re.findall(r"^ce epoch 1/1: ", err, re.M)) == 1, err
    assert len(re.findall(r"^(ce|kd) epoch [12]/2: ", err, re.M)) == 4, err


def test_worker_progress_is_relayed_to_the_sweeps_bars():
    """A run in a worker process sends its bar (a few messages a second) and the sweep's process draws it."""
    import queue

    from kdzoo.engine.progress import QueueProgress

    q: queue.Queue = queue.Queue()
    worker = QueueProgress(q, unit=7, label="s1 kd,dkd a→b")
    worker.EVERY = 0.0                       # every step sends (the default batches them per 0.5 s)
    task = worker.task("", total=6)
    worker.describe(task, "epoch 1/2 s1 kd,dkd a→b")
    for _ in range(3):
        worker.step(task, 2 * 128)
    sweep = Progress(console=_terminal())
    with sweep:
        sweep.sweep = sweep.task("sweep 0/4 runs", total=4 * 6 * 128)
        while not q.empty():
            sweep.relay(q.get())
        lines = _rendered(sweep)
        assert lines[1].startswith("epoch 1/2 s1 kd,dkd a→b") and "3/6" in lines[1]
        assert "768/3072" in lines[0] and all(len(line) <= 80 for line in lines)
        worker.done(task)
        while not q.empty():
            sweep.relay(q.get())
        assert len(_rendered(sweep)) == 1       # the run's bar is gone with its run
