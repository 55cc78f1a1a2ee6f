"""Following the specs through ``execute_cohort``, calls go downhill: no kdzoo module is re-entered.

While a tiny cohort sweep runs, every call made inside ``execute_cohort`` is looked at: the kdzoo
modules on the stack from ``execute_cohort`` down, in order, with repeats folded, must not name one
module twice (a module named in k separate stretches was re-entered k - 1 times). Issue 26 allows up
to two re-entries; the code has none, and this keeps it at most two.
"""
from __future__ import annotations

import collections
import sys

from test_bench_run import recipe as bench_recipe

ALLOWED = 2


def reentries(modules: list[str]) -> dict[str, int]:
    """module -> how many times the sequence comes back to it after leaving it."""
    stretches = [m for i, m in enumerate(modules) if i == 0 or modules[i - 1] != m]
    return {m: k - 1 for m, k in collections.Counter(stretches).items() if k > 1}


def test_reentries_are_counted_by_stretches():
    assert reentries(["a", "a", "b", "c"]) == {}
    assert reentries(["a", "b", "a", "c", "a"]) == {"a": 2}
    assert reentries(["a", "b", "b", "a", "b"]) == {"a": 1, "b": 1}


def test_execute_cohort_calls_go_downhill(tmp_path):
    import kdzoo.bench.execution.run as run
    from kdzoo.bench.runner import run_bench

    recipe = bench_recipe(tmp_path, seeds="[0]", methods="[ce, kd, dkd, my_kd]", name="downhill")
    worst: dict[str, tuple[int, list[str]]] = {}
    seen = [0]
    target = run.execute_cohort.__code__

    def profile(frame, event, arg):
        if event != "call":
            return
        stack, f = [], frame
        while f is not None and f.f_code is not target:
            stack.append(f)
            f = f.f_back
        if f is None:
            return
        seen[0] += 1
        names = [n for n in (x.f_globals.get("__name__", "") for x in [f, *reversed(stack)])
                 if n.startswith("kdzoo")]
        for m, k in reentries(names).items():
            if k > worst.get(m, (0, []))[0]:
                worst[m] = (k, names)

    sys.setprofile(profile)
    try:
        report = run_bench(recipe, tmp_path / "out", device="cpu", progress=False, workers=1)
    finally:
        sys.setprofile(None)
    assert not report.stopped
    assert seen[0] > 1000                       # the cohort trained inside execute_cohort, in this process
    over = {m: " > ".join(path) for m, (k, path) in worst.items() if k > ALLOWED}
    assert not over, over
