"""Waiting for a run another process holds: the wait names the holder (pid, host, since when), goes on for
as long as the holder trains, and gives up, with what to do, on a holder that stays stopped (Ctrl-Z,
SIGSTOP) or whose lock outlives it. The unit tests drive the wait with a clock that advances only
when the wait sleeps, so no test depends on how fast the machine is."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdzoo.bench.execution.locks import holder, is_held, wait_free
from kdzoo.bench.recipe.parse import load_recipe
from kdzoo.bench.runner import run_bench
from kdzoo.bench.execution.store import RunStore
from kdzoo.bench.plan import expand

from conftest import unwrapped
from reliability_harness import leaderboard, write_recipe

REPO = Path(__file__).resolve().parents[1]
START_LIMIT = 120
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")

# takes the run's lock as kdzoo does, says so, then stops itself (as Ctrl-Z would) or leaves a child holding it
HOLDER = """\
import os, signal, sys, time
from kdzoo.bench.execution.store import RunStore
lock = RunStore(sys.argv[1]).lock(sys.argv[2])
if sys.argv[3] == "fork":
    child = os.fork()
    if child == 0:          # inherits the locked file: the lock outlives the process that took it
        time.sleep(600)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)
print(os.getpid(), flush=True)
if sys.argv[3] == "stop":
    os.kill(os.getpid(), signal.SIGSTOP)
time.sleep(600)
"""


class FakeClock:
    """time that moves only when the code under test sleeps."""

    def __init__(self, step: float, on_sleep=None) -> None:
        self.now, self.step, self.sleeps, self.on_sleep = 0.0, step, 0, on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += self.step
        self.sleeps += 1
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def _state(pid: int) -> str:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2]


@pytest.fixture
def hold(tmp_path):
    """Start a process that holds run ``h``'s lock in ``out`` ("stop", "run" or "fork"); ended afterwards."""
    procs, pids = [], []

    def start(out: Path, h: str, how: str) -> int:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), h, how], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        procs.append(proc)
        pid = int(proc.stdout.readline())
        pids.append(pid)
        end = time.monotonic() + START_LIMIT
        while not (how == "stop" and _state(pid) == "T" or how != "stop" and is_held(out / "runs" / h / ".lock")):
            assert time.monotonic() < end, "the holder did not take the lock"
            time.sleep(0.05)
        return pid
    yield start
    for pid in pids:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)        # the processes this test started, by their id
            except ProcessLookupError:
                pass
    for proc in procs:
        proc.wait()


H = "0123456789abcdef"


def test_a_stopped_holder_is_named_and_given_up_on_after_the_stated_time(tmp_path, hold):
    pid = hold(tmp_path, H, "stop")
    path = tmp_path / "runs" / H / ".lock"
    clock, heard = FakeClock(step=1.0), []
    why = wait_free(path, patience=120, report=heard.append, clock=clock, sleep=clock.sleep)
    assert why == (f"gave up after 120 s: its lock is held by pid {pid}, which is stopped; resume it (fg, or "
                   f"kill -CONT {pid}) or end it, then run the same command again")
    assert clock.sleeps == 120                                   # the stated time, by the wait's own clock
    (line,) = heard                                              # said once: the holder did not change
    who = holder(path)
    assert line == (f"held by pid {pid} on {who.host}, since {who.since} ({who.age()} ago), which is stopped "
                    f"(Ctrl-Z or SIGSTOP); giving up in 120 s unless it resumes")


def test_a_holder_that_trains_is_waited_for_however_long_it_takes(tmp_path, hold):
    pid = hold(tmp_path, H, "run")

    def end_after(sleeps: int) -> None:       # the holder finishes after an hour and a half of fake time
        if sleeps == 3:
            os.kill(pid, signal.SIGKILL)
            while is_held(tmp_path / "runs" / H / ".lock"):
                time.sleep(0.01)
    clock, heard = FakeClock(step=1800.0, on_sleep=end_after), []
    assert wait_free(tmp_path / "runs" / H / ".lock", patience=120, report=heard.append, clock=clock,
                     sleep=clock.sleep) is None
    assert len(heard) == 1 and heard[0].startswith(f"held by pid {pid} on ")


def test_a_lock_that_outlives_its_holder_is_given_up_on(tmp_path, hold):
    child = hold(tmp_path, H, "fork")
    path = tmp_path / "runs" / H / ".lock"
    pid = holder(path).pid
    assert pid != child and is_held(path)
    clock = FakeClock(step=10.0)
    why = wait_free(path, patience=60, clock=clock, sleep=clock.sleep)
    assert why == (f"gave up after 60 s: pid {pid}, which took its lock, has ended, but a process it started still "
                   f"holds {path}; end that process, then run the same command again")


def test_a_sweep_gives_up_on_a_stopped_holder_and_the_same_command_finishes_later(tmp_path, hold, capsys):
    recipe = write_recipe(tmp_path, seeds=(0,), methods=["ce", "kd"], name="rellocks")
    out = tmp_path / "out"
    plan = expand(load_recipe(recipe), out, device="cpu")
    teacher = plan.hashes("teacher")[0]
    pid = hold(out, teacher, "stop")                     # e.g. another sweep, suspended with Ctrl-Z
    report = run_bench(recipe, out, device="cpu", progress=False, lines=True, lock_patience=0.5)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert not report.ok, text
    waiting = f"waiting for teacher fmnist_cnn_tiny ({teacher}): held by pid {pid}"   # wrapped to 80 columns
    assert unwrapped(waiting) in unwrapped(text)
    # the give-up is a problem line: wrapped on a terminal only, so in this pipe it is one line, whole
    (gave_up,) = [line for line in text.splitlines() if f"({teacher}): gave up" in line]
    assert gave_up.startswith(f"teacher fmnist_cnn_tiny ({teacher}): gave up after 0 s: its lock is held by pid "
                              f"{pid}") and gave_up.endswith("run the same command again"), text
    statuses = {r["label"]: r["status"] for r in leaderboard(out)}
    assert statuses == {"teacher": "running", "ce": "finished", "kd": "pending"}
    os.kill(pid, signal.SIGKILL)                         # the user ends the stopped sweep
    while RunStore(out).is_locked(teacher):
        time.sleep(0.01)
    assert run_bench(recipe, out, device="cpu", progress=False).ok
