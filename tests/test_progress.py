"""Progress: bars that fit 80 columns with counts and ETAs, movement inside an epoch, a resume line, log lines
without bars, and the dry run's time estimate (issue 16, item 4)."""
from __future__ import annotations

import io
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
        run = p.task("3/10 s0 fmnist_teacher→fmnist_cnn_tiny ce,kd,dkd,rld,mcld", total=4_700)
        for _ in range(5):
            p.step(run, 128 * 5)
        lines = _rendered(p)
    assert len(lines) == 2
    for line in lines:
        assert len(line) <= 80, line
        assert re.search(rf"{TIME} eta {TIME}$", line), line       # elapsed, then the ETA: both visible
    assert lines[0].startswith("sweep 3/15 runs") and "3200/4.7M" in lines[0]
    # a cohort's bar: the epoch, the seed and the whole pair; the methods are what a narrow terminal cuts
    assert lines[1].startswith("3/10 s0 fmnist_teacher→fmnist_cnn_tiny…") and "5/4700" in lines[1]


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
    assert rec.descriptions == ["1/2 ce", "2/2 ce"]
    assert [l.split(":")[0] for l in rec.lines_printed] == ["ce epoch 1/2", "ce epoch 2/2"]   # one line per epoch
    # as if killed during epoch 2: the checkpoint of epoch 1 is the newest
    run = tmp_path / "run"
    for suffix in ("", ".sha256"):
        shutil.copy(run / f"checkpoint.prev.pt{suffix}", run / f"checkpoint.pt{suffix}")
    rec = _Recorder()
    _fit(bundle, run, 2, rec)
    assert rec.lines_printed[0] == f"ce: resuming at epoch 2 of 2 (1 done; {run})"
    assert rec.steps == 4 and rec.descriptions == ["2/2 ce"]


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
        assert frame[0].startswith("sweep ") and all(re.search(rf"eta ({TIME}|-:--:--|\?)$", l) for l in frame)
    assert frames[0][1].startswith("1/1 teacher fmnist_mlp")
    assert any(f[1].startswith("2/2 kd fmnist_mlp→fmnist_cnn_tiny s0") for f in frames)
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
    assert len(re.findall(r"^teacher fmnist_mlp epoch 1/1: ", err, re.M)) == 1, err     # named as the teacher
    assert len(re.findall(r"^(ce fmnist_cnn_tiny|kd fmnist_mlp→fmnist_cnn_tiny) s0 epoch [12]/2: ", err, re.M)) == 4, err


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


def test_worker_lines_reach_the_sweep_resumes_shown_epochs_left_to_the_bars():
    """With bars, a worker's resume line is printed above them (it was lost); its epoch lines are not (the
    run's bar shows the epoch); without bars, both are printed."""
    import queue

    from kdzoo.engine.progress import QueueProgress

    q: queue.Queue = queue.Queue()
    worker = QueueProgress(q, unit=3)
    worker.print("kd fmnist_mlp→fmnist_cnn_tiny s0: resuming at epoch 2 of 4 (1 done; out/runs/x)")
    worker.print("kd fmnist_mlp→fmnist_cnn_tiny s0 epoch 2/4: ce=0.5 kd=0.1 test_top1=80.00 (1.0s)")
    events = [q.get() for _ in range(2)]
    for bars in (True, False):
        console = _terminal() if bars else Console(file=io.StringIO(), width=80)
        sweep = Progress(console=console, lines=True)
        assert sweep.live is bars
        with sweep:
            for event in events:
                sweep.relay(event)
        text = console.file.getvalue()
        assert "resuming at epoch 2 of 4 (1 done" in text
        assert ("epoch 2/4: ce=0.5" in text) is not bars


def test_time_left_says_when_it_is_a_lower_bound():
    from kdzoo.bench.execution.eta import TimeLeft

    assert TimeLeft(seconds=600, known=4).describe(2) == (
        "estimated time left: 10 min of training in one process, about 5 min with 2 workers (speed of earlier "
        "runs of the same models)")
    text = TimeLeft(seconds=9, known=1, unknown=12).describe()
    assert text.startswith("estimated time left: more than 9 s of training in one process: that is for 1 of "
                           "the 13 runs left; the other 12 have no earlier run"), text


def _clock(tmp_path, workers):
    """A teacher (600 images) and four students of another model pair (cohorts of two, 200 images each)."""
    from kdzoo.bench.execution.eta import SweepClock
    from kdzoo.bench.spec import RunSpec
    from kdzoo.bench.execution.store import RunStore

    cfg = TrainConfig(epochs=1, batch_size=100)
    specs = {"t": RunSpec(dataset="d", student="fmnist_mlp", train=TrainConfig(epochs=3, batch_size=100))}
    for i, method in enumerate(["kd", "dkd", "kd", "dkd"]):
        specs[f"s{i}"] = RunSpec(dataset="d", student="fmnist_cnn_tiny", method=method, teacher="fmnist_mlp",
                                 teacher_ckpt="t.pt", seed=i // 2, train=cfg)
    return SweepClock(RunStore(tmp_path), specs, [[["t"]], [["s0", "s1"], ["s2", "s3"]]], workers,
                      sizes={"d": 200})


def test_the_sweep_eta_prices_each_phase_by_its_own_models_and_workers(tmp_path, monkeypatch):
    """Worked by hand. The teacher: 600 images at 100/s = 6 s; the students: 4 x 200 images at 400/s = 2 s
    of one worker, shared by min(2 workers, 2 units) = 1 s; 7 s in all (pricing the students at the
    teacher's speed, as the sweep's images/s did, would say (600 + 800) / 100 = 14 s)."""
    import kdzoo.bench.execution.eta as eta

    clock = _clock(tmp_path, workers=2)
    assert clock.seconds() is None                      # nothing timed yet: "eta ?", not a guess
    clock.speeds = {("d", "fmnist_mlp", ""): 100.0}
    assert clock.seconds() is None                      # the teacher's speed never prices the students
    clock.speeds[("d", "fmnist_cnn_tiny", "fmnist_mlp")] = 400.0
    assert clock.seconds() == pytest.approx(6 + 1)
    assert _clock(tmp_path, workers=1).seconds() is None
    one = _clock(tmp_path, workers=1)
    one.speeds = dict(clock.speeds)
    assert one.seconds() == pytest.approx(6 + 2)        # one worker does both cohorts in turn
    # the teacher trains: 300 of its images done; the students are timed while they train
    now = [1000.0]
    monkeypatch.setattr(eta.time, "monotonic", lambda: now[0])
    fresh = _clock(tmp_path, workers=2)
    fresh.speeds = {("d", "fmnist_mlp", ""): 100.0}
    fresh.advance(("t",), 300)
    assert fresh.seconds() is None
    fresh.finish(["t"])
    fresh.advance(("s0", "s1"), 100)                    # the first step starts the clock of the unit
    now[0] += 0.5
    fresh.advance(("s0", "s1"), 100)                    # 100 images in 0.5 s: 200 images/s for the pair
    # the cohort trained 200 member-images, 100 of each run: left 100 + 100 + 200 + 200 = 600 at 200/s = 3 s
    # of one worker, over 2 workers
    assert fresh.seconds() == pytest.approx(3 / 2)
