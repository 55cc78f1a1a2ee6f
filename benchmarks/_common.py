"""Shared helpers of the speed/memory scripts: provenance, timing, JSON output.

Every script measures RATIOS of variants run interleaved in one process and
repeated (median over repetitions), because the machines these run on are
shared and their absolute speed drifts. Raw timings are kept in the JSON.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "results" / "perf"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "device": gpu or f"cpu: {cpu_name()}, {os.cpu_count()} cores",
        "gpu": gpu,
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "worktree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def write_result(name: str, payload: dict[str, Any], env: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**env, "load_average_at_end": list(os.getloadavg())}
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "environment": env, **payload}, indent=2, default=float) + "\n")
    return path


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of ``fn()`` (GPU work included)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``.

    On a shared machine the CPU time of a single-threaded process is far less
    disturbed by other jobs than its wall time (time spent descheduled is not
    counted), so CPU-side ratios are taken from it; both are recorded.
    """
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def rss_mib() -> float:
    """Current resident set size of this process (MiB), from /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cpu_time(fn, min_seconds: float = 0.05, max_iters: int = 1000) -> float:
    """CPU seconds per call of ``fn``, repeating it until ``min_seconds`` have passed."""
    fn()
    n, start = 0, time.process_time()
    while True:
        fn()
        n += 1
        spent = time.process_time() - start
        if spent >= min_seconds or n >= max_iters:
            return spent / n
