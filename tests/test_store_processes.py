"""The sweep's worker processes: they die with the sweep (no orphans after ``kill -9``), and a lost worker
ends the sweep with a line saying that the same command resumes its runs.

``kdzoo bench`` runs as a real command in its own session with two workers; each trains a
run of ``storetest_hold`` (tests/store_plugin.py), which records the worker's pid and holds
its first step until the test releases it, so the kill lands while both workers are busy.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reliability_harness import PLUGIN, leaderboard

REPO = Path(__file__).resolve().parents[1]
STORE_PLUGIN = Path(__file__).resolve().parent / "store_plugin.py"
START_LIMIT = 300      # seconds for two spawned workers to start training on a loaded machine
END_LIMIT = 60         # seconds for a process to be gone after its parent was killed (the watch polls each second)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def _recipe(folder: Path) -> Path:
    path = folder / "storeproc.yaml"
    path.write_text("\n".join([
        "name: storeproc",
        "dataset: reltest-tiny",
        f"plugins: [{PLUGIN}, {STORE_PLUGIN}]",
        "teachers:",
        "  fmnist_cnn_tiny: {train: {epochs: 1, batch_size: 16}}",
        "pairs:",
        "  - {teacher: fmnist_cnn_tiny, student: fmnist_mlp}",
        "methods:",
        "  - {name: storetest_hold, label: hold-a, args: {tag: a}}",
        "  - {name: storetest_hold, label: hold-b, args: {tag: b}}",
        "seeds: [0]",
        "train: {epochs: 1, batch_size: 16}",
    ]) + "\n")
    return path


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, session, ...), None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")   # a zombie has ended; only its parent's reaping is left


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the sweep started its own)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[3]) == sid:
                out.append(int(entry.name))
    return out


def _wait(condition, limit: float, what: str) -> None:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"{what} within {limit:.0f} s")
        time.sleep(0.1)


class Sweep:
    """``kdzoo bench`` with two workers in its own session; ``close`` ends whatever of it is left."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.recipe, self.out = tmp, _recipe(tmp), tmp / "out"
        self.pids, self.release = tmp / "pids", tmp / "release"
        self.pids.mkdir(exist_ok=True)
        self.procs: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO), "KDZOO_STORETEST_PIDS": str(self.pids),
               "KDZOO_STORETEST_RELEASE": str(self.release)}
        log = open(self.tmp / f"bench-{len(self.procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "kdzoo", "bench", str(self.recipe), "--out", str(self.out),
                                 "--workers", "2", "--cohort", "off", "--device", "cpu", "--no-progress"],
                                cwd=self.tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def workers(self) -> list[int]:
        _wait(lambda: len(list(self.pids.iterdir())) == 2, START_LIMIT, "both workers did not start training")
        return sorted(int(p.name) for p in self.pids.iterdir())

    def log(self, i: int) -> str:
        return (self.tmp / f"bench-{i}.log").read_text()

    def close(self) -> None:
        self.release.touch()
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # the session this test started, whatever is left of it
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture
def sweep(tmp_path):
    s = Sweep(tmp_path)
    yield s
    s.close()


def test_kill_9_of_the_sweep_leaves_no_worker_behind(sweep):
    main = sweep.start()
    workers = sweep.workers()
    assert all(int(_stat(pid)[1]) == main.pid for pid in workers)      # the pool's workers, busy training
    os.kill(main.pid, signal.SIGKILL)
    main.wait()
    _wait(lambda: not any(_alive(pid) for pid in workers), END_LIMIT, "a worker outlived the sweep")
    # nothing of the sweep is left: no worker, no resource tracker
    _wait(lambda: not _session(main.pid), END_LIMIT, f"processes {_session(main.pid)} outlived the sweep")


def test_a_lost_worker_ends_the_sweep_with_how_to_resume(sweep):
    main = sweep.start()
    workers = sweep.workers()
    os.kill(workers[0], signal.SIGKILL)                # e.g. the out-of-memory killer
    assert main.wait(timeout=START_LIMIT) == 1
    text = sweep.log(0)
    assert "Traceback" not in text, text
    lost = [line for line in text.splitlines() if line.startswith("a worker process was lost")]
    assert len(lost) == 1 and "run the same command again to resume them" in lost[0], text
    assert "2 runs: 2 interrupted" in text
    assert "did not finish (see the lines above): run the same command again" in text
    sweep.release.touch()
    again = sweep.start()
    assert again.wait(timeout=START_LIMIT) == 0, sweep.log(1)
    assert {r["label"]: r["status"] for r in leaderboard(sweep.out)} == {"hold-a": "finished", "hold-b": "finished"}
