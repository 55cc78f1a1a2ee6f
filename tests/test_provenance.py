"""Provenance that tells machines apart (issue 25, item 1): CPU vendor and model, and what oneDNN and MKL
dispatch to, recorded with every result, and named by ``kdzoo compare`` when two leaderboards come from
different machines."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from kdzoo.bench.report import compare
from kdzoo.bench.execution import provenance

from conftest import REPO, kdzoo_main

QUICKSTART = REPO / "results" / "quickstart"

# what oneDNN v3.12 and oneMKL 2024.0 (in torch 2.14.1) printed on this project's AMD EPYC, and lines of the same form
# naming other instruction sets (written for this test, not captured), as an Intel Xeon would report
AMD = """\
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Architecture \
processors, Lnx 2.60GHz lp64 gnu_thread
MKL_VERBOSE SGEMM(N,N,16,16,16,0x7ffd,0x5579,16,0x5579,16,0x7ffd,0x5579,16) 28.01ms CNR:OFF Dyn:1 FastMM:1 TID:0
onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71049cd69a3df32adcccb623b12cd7baa22)
onednn_verbose,v1,info,cpu,runtime:OpenMP,nthr:2
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support
onednn_verbose,v1,info,gpu,runtime:none
"""
XEON = """\
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Advanced \
Vector Extensions 512 (Intel(R) AVX-512) enabled processors, Lnx 2.10GHz lp64 gnu_thread
onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions
"""


@pytest.mark.parametrize("text, onednn, mkl", [
    (AMD, "Intel AVX-512 with Intel DL Boost and bfloat16 support", "Intel(R) Architecture processors"),
    (XEON, "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions",
     "Intel(R) Advanced Vector Extensions 512 (Intel(R) AVX-512) enabled processors"),
    ("", "unknown", "unknown" if torch.backends.mkl.is_available() else "no MKL"),
])
def test_what_the_libraries_print_is_read_never_guessed(monkeypatch, text, onednn, mkl):
    monkeypatch.setattr(provenance, "_verbose_lines", lambda: text)
    found = provenance.machine.__wrapped__()       # not the cached answer of this process
    assert (found["onednn_isa"], found["mkl_isa"]) == (onednn, mkl)


def test_every_result_records_the_machine_and_probing_prints_nothing(tmp_path):
    """In a fresh process (the libraries print their dispatch once per process): the fields are filled in
    from this machine, and nothing of the probe reaches the process's stdout."""
    code = "import json, sys; from kdzoo.bench.execution.run import environment; print(json.dumps(environment()), " \
           "file=sys.stderr)"
    env = {k: v for k, v in os.environ.items() if k not in provenance.KERNEL_ENV and "VERBOSE" not in k}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(REPO), "MKL_CBWR": "COMPATIBLE"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    record = json.loads(proc.stderr.strip().splitlines()[-1])
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        model = next(line.split(":", 1)[1] for line in cpuinfo.read_text().splitlines() if line.startswith("model name"))
        assert record["cpu_model"] == " ".join(model.split())
        assert record["cpu_vendor"] != "unknown"
    if torch.backends.mkldnn.is_available() and os.uname().machine == "x86_64":
        assert record["onednn_isa"] != "unknown"
    if torch.backends.mkl.is_available():
        assert record["mkl_isa"] != "unknown"
    assert record["kernel_env"] == "MKL_CBWR=COMPATIBLE"      # a setting that changes MKL's kernels
    for key in ("cpu_capability", "torch_build", "threads", "device", "cudnn_version"):
        assert key in record


def _board(cpu_model: str, onednn: str = "Intel AVX-512 with Intel DL Boost and bfloat16 support") -> pd.DataFrame:
    df, _ = compare.load_runs(QUICKSTART)
    return df.assign(cpu_vendor="AuthenticAMD", cpu_model=cpu_model, onednn_isa=onednn)


def test_compare_names_another_cpu_model():
    rows = compare.compare(_board("AMD EPYC"), _board("Intel(R) Xeon(R) Platinum 8480+",
                                                       "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions"))
    assert all(r.other_machine == ["CPU model", "oneDNN ISA"] for r in rows)
    assert compare.note(rows[0]).startswith("other CPU model, oneDNN ISA; ")
    line = compare.summary_line(rows, compare.DEFAULT_TOLERANCE, compare.DEFAULT_ALPHA)
    assert "5 ran on another machine than the reference (other CPU model, oneDNN ISA: a new sample" in line
    same = compare.compare(_board("AMD EPYC"), _board("AMD EPYC"))
    assert not any(r.other_machine for r in same) and "another machine" not in compare.note(same[0])
    # a reference made before the CPU model was recorded says nothing about it
    old, _ = compare.load_runs(QUICKSTART)
    assert not any(r.other_machine for r in compare.compare(old, _board("AMD EPYC")))


def test_compare_cli_says_other_cpu_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for name, model in (("ref", "AMD EPYC"), ("new", "Intel(R) Xeon(R) Gold 6338")):
        (tmp_path / name).mkdir()
        _board(model).to_csv(tmp_path / name / "leaderboard.csv", index=False)
    assert kdzoo_main(["compare", str(tmp_path / "ref"), str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert out.count("other CPU model;") == 5 and "ran on another machine" in out
