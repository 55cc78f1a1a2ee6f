"""Helpers for the kill and concurrency tests: a tiny recipe, sweeps in killable processes, store checks."""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import torch

from kdzoo.engine.recovery import prev_path, verify

REPO = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "reliability_plugin.py"
ENDED = {"finished", "diverged", "failed"}
# columns that legitimately differ between two executions of the same sweep
UNCOMPARED = {"train_seconds", "images_per_second", "git_commit", "kdzoo_version", "torch_version", "device"}
KEY = ("role", "teacher", "student", "label", "access", "seed")


DEFAULT_METHODS = ["ce", "kd", "{name: reltest_count, label: count, args: {tag: c}}",
                   "{name: reltest_nan, label: nan, args: {after: 2}}"]


def write_recipe(folder: Path, seeds=(0, 1), methods=DEFAULT_METHODS, name: str = "reltest") -> Path:
    lines = [
        f"name: {name}",
        "dataset: reltest-tiny",
        f"plugins: [{PLUGIN}]",
        "teachers:",
        "  fmnist_cnn_tiny: {train: {epochs: 2, batch_size: 16, lr: 0.1}}",
        "pairs:",
        "  - {teacher: fmnist_cnn_tiny, student: fmnist_mlp}",
        "methods:",
        *(f"  - {m}" for m in methods),
        f"seeds: {list(seeds)}",
        "train: {epochs: 3, batch_size: 16, lr: 0.1}",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_here(recipe: Path, out: Path, counts: Path | None = None, **kw):
    """``run_bench`` in this process, with the plugin's execution counter in ``counts`` (default
    ``out``'s sibling counts.txt); $KDZOO_RELTEST_COUNT is restored afterwards."""
    from kdzoo.bench.runner import run_bench

    old = os.environ.get("KDZOO_RELTEST_COUNT")
    os.environ["KDZOO_RELTEST_COUNT"] = str(counts or out.parent / "counts.txt")
    try:
        return run_bench(recipe, out, device="cpu", progress=False, **kw)
    finally:
        if old is None:
            del os.environ["KDZOO_RELTEST_COUNT"]
        else:
            os.environ["KDZOO_RELTEST_COUNT"] = old


def bench_argv(recipe: Path, out: Path, *extra: str) -> list[str]:
    # one process: the kill points are in the sweep's own process (the default would start one worker per core)
    return ["bench", str(recipe), "--out", str(out), "--device", "cpu", "--no-progress", "--workers", "1", *extra]


# Sweeps run in processes forked from a server that has imported torch and kdzoo once: starting
# one costs milliseconds instead of seconds, and each is a separate process that can be SIGKILLed.
_PRELOAD = ["torch", "pandas", "matplotlib.pyplot", "kdzoo", "kdzoo.cli", "kdzoo.bench.runner", "kdzoo.cli.bench"]
_CTX = None


def _context():
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(_PRELOAD)
    return _CTX


def _bench_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """Child: ``kdzoo ARGV`` with stdout and stderr in ``log``; exits with kdzoo's exit status."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    for key in [k for k in os.environ if k.startswith("KDZOO_RELTEST_")]:
        del os.environ[key]
    os.environ.update(env)
    import torch
    torch.set_num_threads(1)
    from kdzoo.cli import main
    try:
        rc = main(argv)
    except BaseException:
        import traceback
        traceback.print_exc()
        rc = 3
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def start_bench(argv: list[str], log: Path, **env: str):
    proc = _context().Process(target=_bench_child, args=(argv, env, str(log)), daemon=True)
    proc.start()
    return proc


def leaderboard(out: Path) -> list[dict[str, str]]:
    with open(out / "leaderboard.csv", newline="") as f:
        rows = [{k: v for k, v in r.items() if k not in UNCOMPARED} for r in csv.DictReader(f)]
    return sorted(rows, key=lambda r: tuple(r[k] for k in KEY))


def results(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "result.json").read_text())
            for d in sorted((out / "runs").iterdir()) if (d / "result.json").exists()}


class StoreWatcher:
    """Checks the run store after every kill."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.frozen: dict[str, bytes] = {}   # run hash -> result.json bytes when first seen

    def check(self) -> None:
        runs = self.out / "runs"
        if not runs.is_dir():
            return
        for d in runs.iterdir():
            result = d / "result.json"
            if result.exists():
                data = result.read_bytes()
                record = json.loads(data)                       # never a partial file
                assert record["status"] in ENDED and record["config_hash"] == d.name, record
                if record["status"] == "finished":              # result.json is written after model.pt
                    state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
                    assert isinstance(state, dict) and state
                if d.name in self.frozen:
                    assert self.frozen[d.name] == data, f"run {d.name} was recomputed after it ended"
                else:
                    self.frozen[d.name] = data
            ckpt = d / "checkpoint.pt"
            if ckpt.exists():                                   # a good checkpoint, or a good fallback
                assert verify(ckpt) is None or verify(prev_path(ckpt)) is None, d
        board = self.out / "leaderboard.csv"
        if board.exists():
            with open(board, newline="") as f:
                rows = list(csv.DictReader(f))
            for row in rows:
                assert None not in row and None not in row.values(), "truncated leaderboard row"
                if row["status"] in ENDED:                      # the leaderboard never claims more than the store
                    record = json.loads((runs / row["config_hash"] / "result.json").read_text())
                    assert record["status"] == row["status"]


def run_killed(recipe: Path, out: Path, *, event: str | None = None, delay: float | None = None,
               timeout: float = 300) -> tuple[int, str]:
    """Run the sweep once, killed by the plugin at ``event`` or from outside after ``delay`` seconds.

    Returns the exit status (0, or -SIGKILL) and what the sweep printed.
    """
    log = out.parent / f"bench-{len(list(out.parent.glob('bench-*.log')))}.log"
    proc = start_bench(bench_argv(recipe, out), log, **({"KDZOO_RELTEST_KILL": event} if event else {}))
    try:
        proc.join(delay if delay is not None else timeout)
        if proc.exitcode is None and delay is not None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout)
    finally:
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise AssertionError(f"bench did not end within {timeout}s")
    text = log.read_text()
    assert "Traceback" not in text, text
    if proc.exitcode not in (0, -signal.SIGKILL):
        raise AssertionError(f"bench exited {proc.exitcode}:\n{text}")
    return proc.exitcode, text
