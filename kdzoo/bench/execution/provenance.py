"""What a result was computed on: recorded with every run, so that two results can be told apart by machine.

A run is bit-identical only where the same kernels sum in the same order. On a CPU that is
decided by more than torch's build: ATen's vectorized kernels dispatch on ``cpu_capability``
(AVX2, AVX512), convolutions go to oneDNN, which picks its own instruction set (AVX-512 with
or without bfloat16 or AMX support), and matrix products go to MKL, which picks a code path by
CPU vendor (on an AMD CPU it may take its generic path where an Intel one gets AVX-512). Two
machines with the same ``cpu_capability`` can thus differ in the other two. What each library
dispatches to is read from the library itself: its verbose mode prints it once per process,
the first time it is switched on, and ``machine()`` catches that line (file descriptor 1 goes
to a temporary file for the few milliseconds of two tiny operations). Environment variables that
steer the dispatch are recorded as set. Anything that cannot be read is "unknown", never guessed.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

from ... import __version__

# environment variables that change which kernels run (or how MKL rounds), recorded when set
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
              "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "CUBLAS_WORKSPACE_CONFIG")
# the recorded fields that describe the machine, with the words kdzoo compare uses for them
MACHINE_FIELDS = {"cpu_model": "CPU model", "cpu_capability": "CPU capability", "onednn_isa": "oneDNN ISA",
                  "mkl_isa": "MKL code path", "device": "device", "torch_build": "torch build",
                  "cudnn_version": "cuDNN", "threads": "threads", "kernel_env": "kernel settings"}
UNKNOWN = "unknown"


def environment(threads: int | None = None) -> dict[str, Any]:
    """Provenance recorded with every result: versions, device, and what the machine's kernels dispatch to."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[2], timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    cudnn = torch.backends.cudnn.version() if torch.cuda.is_available() else None
    return {"kdzoo_version": __version__, "git_commit": commit or "unknown", "torch_version": torch.__version__,
            "device": device, "cpu_capability": cpu_capability(), "torch_build": torch.version.git_version[:12],
            "threads": int(threads) if threads is not None else torch.get_num_threads(),
            **machine(), "cudnn_version": str(cudnn) if cudnn else "",
            "kernel_env": " ".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if os.environ.get(k))}


def cpu_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # torch builds without the query
        return UNKNOWN


@functools.lru_cache(maxsize=1)
def machine() -> dict[str, str]:
    """CPU vendor and model, and the instruction sets oneDNN and MKL dispatch to (read once per process)."""
    vendor, model = cpu_name()
    text = _verbose_lines()
    onednn = re.search(r"onednn_verbose,.*?info,cpu,isa:(.+)", text)
    mkl = re.search(r"MKL_VERBOSE .*? for Intel\(R\) 64 architecture (.+?), Lnx", text)
    return {"cpu_vendor": vendor, "cpu_model": model,
            "onednn_isa": onednn.group(1).strip() if onednn else UNKNOWN,
            "mkl_isa": mkl.group(1).strip() if mkl else (UNKNOWN if torch.backends.mkl.is_available() else "no MKL")}


def cpu_name() -> tuple[str, str]:
    """(vendor, model name) from /proc/cpuinfo (Linux) or sysctl (macOS); "unknown" where neither answers."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        info = ""
    fields = dict(re.findall(r"^(vendor_id|model name|CPU implementer|Hardware)\s*:\s*(.+)$", info, re.M))
    vendor, model = fields.get("vendor_id") or fields.get("CPU implementer"), fields.get("model name")
    if not model and sys.platform == "darwin":
        try:
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                   timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            model = ""
    return (vendor or "").strip() or UNKNOWN, " ".join((model or platform.processor() or "").split()) or UNKNOWN


def _verbose_lines() -> str:
    """What MKL and oneDNN print when their verbose mode is switched on around one tiny operation each."""
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "verbose.txt"
            with _stdout_fd_to(path):
                a = torch.ones(16, 16)
                if torch.backends.mkl.is_available():
                    with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                        torch.mm(a, a)
                if torch.backends.mkldnn.is_available():
                    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                        torch.nn.functional.conv2d(torch.ones(2, 16, 16, 16), torch.ones(16, 16, 3, 3))
            return path.read_text(errors="replace")
    except Exception:   # provenance must never fail a run: what cannot be read is recorded as unknown
        return ""


@contextlib.contextmanager
def _stdout_fd_to(path: Path) -> Iterator[None]:
    """Send file descriptor 1 (where the C libraries print) to ``path``; C's buffers are flushed both ways."""
    flush = getattr(ctypes.CDLL(None), "fflush", None) if os.name == "posix" else None
    sys.stdout.flush()
    if flush:
        flush(None)
    saved = os.dup(1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        if flush:
            flush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)


def machine_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The MACHINE_FIELDS where two sets of runs were recorded on other machines, in words ("CPU model").

    ``a`` and ``b`` map a field to its value, or to the values of several runs; a field counts only where
    both sides recorded it (runs made before a field existed say nothing about it)."""
    def text(v: Any) -> str:   # 1 and 1.0 (a CSV column with a gap reads as floats) are the same count
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)

    def known(values: Any) -> set[str]:
        values = values if isinstance(values, (list, tuple, set)) else [values]
        return {text(v) for v in values if v is not None and v == v and text(v) not in ("", UNKNOWN)}

    return [words for k, words in MACHINE_FIELDS.items()
            if known(a.get(k)) and known(b.get(k)) and known(a.get(k)) != known(b.get(k))]


__all__ = ["KERNEL_ENV", "MACHINE_FIELDS", "cpu_capability", "cpu_name", "environment", "machine",
           "machine_differences"]
