"""Kill anywhere: a sweep SIGKILLed at any point and restarted ends with the leaderboard of an uninterrupted sweep.

The sweep is tiny (a synthetic 8x8 dataset registered by tests/reliability_plugin.py,
a teacher trained by the sweep, four methods including one that diverges). Kills
come from the plugin (``KDZOO_RELTEST_KILL=EVENT:N``: the process SIGKILLs itself
at an optimizer step, or just before a named file's atomic rename: inside a
checkpoint write, between a checkpoint and its checksum, between model.pt and
result.json, while writing the leaderboard) and, in the slow test, from outside
at random times. After every kill the store is checked: no partial file is ever
seen as complete, and a run's result.json, once written, never changes (a
finished run is never recomputed). The final leaderboard must equal the
uninterrupted one in every per-run column except timings and provenance, with
no run lost or duplicated.
"""
from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import pytest

from reliability_harness import StoreWatcher, leaderboard, results, run_killed, write_recipe, KEY

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep (in this process: same code, one thread, as the subprocesses)."""
    from kdzoo.bench.runner import run_bench

    root = tmp_path_factory.mktemp("reference")
    recipe = write_recipe(root)
    report = run_bench(recipe, root / "out", device="cpu", progress=False)
    rows = leaderboard(root / "out")
    statuses = {r["status"] for r in rows}
    assert statuses == {"finished", "diverged"}, statuses          # the NaN method diverged, the rest finished
    assert not report.stopped
    return {"rows": rows, "results": results(root / "out"), "recipe_dir": root}


def finish_and_compare(recipe: Path, out: Path, reference: dict, watcher: StoreWatcher) -> None:
    rc, _ = run_killed(recipe, out)
    assert rc == 0
    watcher.check()
    assert leaderboard(out) == reference["rows"]
    final = results(out)
    assert sorted(final) == sorted(reference["results"]), "a run is missing or extra"
    for h, record in final.items():
        want = reference["results"][h]
        for key in ("status", "top1", "top5", "best_top1", "best_epoch", "epochs", "teacher_queries", "message"):
            assert record.get(key) == want.get(key) or (record.get(key) != record.get(key)
                                                        and want.get(key) != want.get(key)), (h, key)
    keys = [tuple(r[k] for k in KEY) for r in leaderboard(out)]
    assert len(keys) == len(set(keys)), "a leaderboard row is duplicated"


def test_kill_at_a_step_a_checksum_and_the_leaderboard(tmp_path, reference):
    """Default-suite version: three kills at chosen points, then a clean finish."""
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    watcher = StoreWatcher(out)
    events = [
        "step:6",                    # mid-way through the teacher's second epoch
        "checkpoint.pt.sha256:7",    # the students' epoch-2 checkpoints written, one checksum not yet
        "leaderboard.csv:1",         # every run done, leaderboard being written
    ]
    printed = []
    for event in events:
        rc, text = run_killed(recipe, out, event=event)
        assert rc == -signal.SIGKILL, f"{event} did not happen"
        printed.append(text)
        watcher.check()
    assert not (out / "leaderboard.csv").exists()      # the killed write left no leaderboard behind
    # the run whose checksum was not written is resumed from its previous checkpoint, with a warning
    assert re.search(r"RecoveryWarning: \S+checkpoint\.pt does not match its checksum .*; resuming from "
                     r"checkpoint\.prev\.pt \(epoch \d\)", printed[2]), printed[2]
    finish_and_compare(recipe, out, reference, watcher)


# event -> how many times it happens in one sweep (the N of EVENT:N is drawn from 1..that)
SLOW_EVENTS = {"step": 40, "checkpoint.pt": 12, "checkpoint.pt.sha256": 12, "checkpoint.prev.pt": 10,
               "checkpoint.prev.pt.sha256": 10, "metrics.jsonl": 12, "config.json": 5, "model.pt": 5,
               "result.json": 5, "recipe.yaml": 1, "plan.json": 1, "leaderboard.csv": 1, "summary.csv": 1,
               "leaderboard.md": 1}


@pytest.mark.slow
def test_kill_anywhere_many_times(tmp_path, reference):
    """At least 20 SIGKILLs at random events and random times, restarting each time until the sweep ends.

    A sweep that ends is compared with the uninterrupted one and a fresh sweep starts, until enough
    kills have landed. ``KDZOO_KILL_SEED`` replays a sequence.
    """
    seed = int(os.environ.get("KDZOO_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    recipe = write_recipe(tmp_path)
    events = list(SLOW_EVENTS)
    rng.shuffle(events)                      # every kind of event is tried once before any repeats
    # a step kill lands only while steps remain, so the first kill (on a fresh sweep) is the step one
    events.remove("step")
    events.append("step")
    kills, log, rounds, landed = 0, [], 0, set()
    while kills < 24 and rounds < 12:
        rounds += 1
        out = tmp_path / f"out{rounds}"
        watcher = StoreWatcher(out)
        for _ in range(15):
            if events or rng.random() < 0.6:
                event = events.pop() if events else rng.choice(list(SLOW_EVENTS))
                what = f"{event}:{rng.randint(1, SLOW_EVENTS[event])}"
                rc, _ = run_killed(recipe, out, event=what)
            else:
                event, delay = "time", rng.uniform(0.2, 5.0)
                what = f"after {delay:.1f}s"
                rc, _ = run_killed(recipe, out, delay=delay)
            log.append(f"round {rounds}: {what} -> {'killed' if rc else 'completed'}")
            watcher.check()
            if rc == 0:
                break
            kills += 1
            landed.add(event)
        finish_and_compare(recipe, out, reference, watcher)
    summary = f"seed {seed}, {kills} kills in {rounds} sweeps:\n" + "\n".join(log)
    print(summary)
    assert kills >= 20, summary
    assert {"step", "leaderboard.csv"} <= landed and landed & {"checkpoint.pt", "checkpoint.pt.sha256"}, summary
