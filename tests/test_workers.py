"""``kdzoo bench`` uses the machine by default: one worker per CPU core, or one per GPU (issue 16, item 6)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kdzoo.bench.execution.launch as launch
import kdzoo.bench.runner as runner

from conftest import kdzoo_main as main

REPO = Path(__file__).resolve().parents[1]


def test_default_workers_is_cores_on_cpu_and_gpus_on_gpu(monkeypatch):
    monkeypatch.setattr(launch, "cpu_count", lambda: 6)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert launch.default_workers("auto") == 6
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert launch.default_workers("auto") == 4 and launch.default_workers("cuda") == 4
    assert launch.default_workers("cuda:1") == 1          # one named GPU: one worker on it
    assert launch.default_workers("cpu") == 6
    assert runner._local_gpus("auto", 4) == 4 and runner._local_gpus("cpu", 4) == 0


@pytest.mark.parametrize("argv,expected", [([], 3), (["--workers", "1"], 1)])
def test_bench_cli_passes_the_default(monkeypatch, tmp_path, argv, expected):
    seen = {}

    class Stop(Exception):
        pass

    def fake_run_bench(recipe, out, **kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(launch, "cpu_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runner, "run_bench", fake_run_bench)
    with pytest.raises(Stop):
        main(["bench", str(REPO / "recipes" / "quickstart.yaml"), "--out", str(tmp_path / "o"), *argv])
    assert seen["workers"] == expected
