"""Two ``kdzoo bench`` processes on one output folder finish the sweep together, each run trained exactly once.

Every student run uses the plugin loss ``reltest_count`` with its own tag; it
appends ``TAG EPOCH PID`` to a shared file on the first step of each epoch. After
both processes end, each tag must show epochs 1..E exactly once, all from one
process, and the leaderboard must equal that of a sweep run alone.
"""
from __future__ import annotations

import collections
import signal

import pytest

from reliability_harness import KEY, StoreWatcher, leaderboard, results, start_bench, write_recipe

TAGS = list("abcd")
METHODS = [f"{{name: reltest_count, label: count-{t}, args: {{tag: {t}}}}}" for t in TAGS]
EPOCHS = 3


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    from kdzoo.bench.runner import run_bench

    root = tmp_path_factory.mktemp("alone")
    recipe = write_recipe(root, seeds=(0,), methods=METHODS, name="relconc")
    run_bench(recipe, root / "out", device="cpu", progress=False, cohort="off")
    return leaderboard(root / "out")


def test_two_bench_processes_share_one_folder(tmp_path, alone):
    recipe = write_recipe(tmp_path, seeds=(0,), methods=METHODS, name="relconc")
    out, counts = tmp_path / "out", tmp_path / "counts.txt"
    argv = ["bench", str(recipe), "--out", str(out), "--device", "cpu", "--no-progress", "--cohort", "off",
            "--workers", "1"]
    procs = [start_bench(argv, tmp_path / f"bench-{i}.log", KDZOO_RELTEST_COUNT=str(counts)) for i in range(2)]
    for p in procs:
        p.join(300)
    logs = [(tmp_path / f"bench-{i}.log").read_text() for i in range(2)]
    for p, log in zip(procs, logs):
        if p.exitcode is None:
            p.kill()
        assert p.exitcode == 0, log
        assert "Traceback" not in log, log

    # each run's training happened exactly once: every epoch once, all in one process
    epochs, pids = collections.defaultdict(list), collections.defaultdict(set)
    for line in counts.read_text().splitlines():
        tag, epoch, pid = line.split()
        epochs[tag].append(int(epoch))
        pids[tag].add(pid)
    assert sorted(epochs) == TAGS
    for tag in TAGS:
        assert epochs[tag] == list(range(1, EPOCHS + 1)), (tag, epochs[tag])
        assert len(pids[tag]) == 1, (tag, pids[tag])
    workers = {pid for s in pids.values() for pid in s}
    print(f"runs trained by {len(workers)} process(es): "
          + ", ".join(f"{t}:{next(iter(pids[t]))}" for t in TAGS))

    # the store and the leaderboard are complete, uncorrupted and equal to a sweep run alone
    StoreWatcher(out).check()
    rows = leaderboard(out)
    assert rows == alone
    keys = [tuple(r[k] for k in KEY) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["status"] for r in rows} == {"finished"}
    assert len(results(out)) == len(TAGS)      # (no teacher run: these losses never look at the teacher)
    # no lock is left held and no temporary file is left behind
    assert not list(out.rglob("*.tmp"))


def test_second_process_waits_for_a_run_the_first_one_holds(tmp_path):
    """A run locked by a live process is not started by another; it is taken over once the holder dies."""
    from kdzoo.bench.execution.store import RunStore

    store = RunStore(tmp_path / "out")
    lock = store.lock("abc123")
    assert lock is not None
    assert store.lock("abc123") is None           # a second taker is refused while the first holds it
    assert store.is_locked("abc123")
    lock.release()
    again = store.lock("abc123")
    assert again is not None
    again.release()
    # the kernel drops the lock of a killed holder: a SIGKILLed process never leaves a run locked
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_forever, args=(str(tmp_path / "out"), ready))
    proc.start()
    assert ready.wait(60)
    assert store.is_locked("abc123")
    proc.kill()
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    assert not store.is_locked("abc123")


def _hold_forever(out: str, ready) -> None:
    import time

    from kdzoo.bench.execution.store import RunStore
    lock = RunStore(out).lock("abc123")
    assert lock is not None
    ready.set()
    time.sleep(600)
