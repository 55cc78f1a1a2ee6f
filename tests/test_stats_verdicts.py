"""kdzoo.stats.verdicts: collapse as an outcome, verdicts read off the simultaneous intervals, the long-table
entry point."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kdzoo.stats import Family, collapse_threshold, verdict_table

NOISE = [0.0, 0.3, -0.2, 0.1, -0.3]


def _runs(values: dict[str, list[float]], status: dict[tuple[str, int], str] | None = None) -> pd.DataFrame:
    status = status or {}
    return pd.DataFrame([{"method": m, "seed": s, "value": v, "status": status.get((m, s), "finished")}
                         for m, vs in values.items() for s, v in enumerate(vs)])


def _table() -> dict[str, list[float]]:
    rng = np.random.default_rng(3)
    base = {"ce": 70.0, "kd": 71.0, "dkd": 70.5, "rld": 70.8}
    return {m: [b + n + e for n, e in zip(NOISE, rng.normal(0, 0.3, 5))] for m, b in base.items()}


def test_collapse_margin_by_hand():
    assert collapse_threshold(10) == pytest.approx(10 + 0.15 * 90)     # 23.5
    assert collapse_threshold(100) == pytest.approx(1 + 0.15 * 99)     # 15.85
    assert math.isnan(collapse_threshold(None))


def test_bimodal_method_is_collapsed_2_of_5_and_judged_on_the_other_3():
    """2 of 5 seeds at chance: marked 'collapsed 2/5' with their values, left out of mean and tests; its verdict
    is the one the same table gives with those two seeds absent."""
    values = _table()
    good = [75.0 + n for n in (0.1, -0.2, 0.2)]
    values["bimodal"] = [good[0], 10.0, good[1], 10.02, good[2]]
    table = verdict_table(_runs(values), "ce", classes=10, draws=4000).set_index("method")
    row = table.loc["bimodal"]
    assert row.collapsed == "collapsed 2/5 (10.00, 10.02)" and row.n_collapsed == 2 and row.n_kept == 3
    assert row["mean"] == pytest.approx(np.mean(good)) and row.outcome == "tested"
    assert row.verdict == "better" and row.delta_low > 0
    # the same table with the two seeds simply missing: identical statistics
    absent = _runs(values)
    absent = absent[~((absent.method == "bimodal") & absent.seed.isin([1, 3]))]
    other = verdict_table(absent, "ce", classes=10, draws=4000).set_index("method")
    for col in ("delta", "delta_low", "delta_high", "rank_low", "rank_high"):
        assert other.loc["bimodal", col] == pytest.approx(row[col]), col
    # averaged in, the two seeds would have made a mean no seed has and a spread that hides everything
    assert np.mean(values["bimodal"]) < 50 and other.loc["bimodal", "collapsed"] == ""


def test_most_seeds_collapsed_or_diverged_means_no_verdict():
    values = _table()
    values["broken"] = [10.0, 74.0, 10.01, 9.99, 73.0]                 # 3 of 5 at chance
    values["unstable"] = [71.0, 70.0, float("nan"), 70.5, 71.2]       # seed 2 diverged
    status = {("unstable", 2): "diverged", ("kd", 4): "failed"}
    fam = Family(_runs(values, status), classes=10, draws=2000)
    table = fam.table("ce").set_index("method")
    assert table.loc["broken", "outcome"] == "collapsed" and table.loc["broken", "verdict"] == "collapsed"
    assert table.loc["broken", "rank_text"] == "—" and math.isnan(table.loc["broken", "delta"])
    assert table.loc["broken", "collapsed"] == "collapsed 3/5 (10.00, 10.01, 9.99)"
    assert table.loc["unstable", "collapsed"] == "collapsed 1/5 (diverged)" and table.loc["unstable", "n_kept"] == 4
    assert table.loc["kd", "n_ended"] == 4 and table.loc["kd", "n_collapsed"] == 0   # a failed run is missing
    assert "broken" not in fam.tested and fam.compare("broken", "ce").verdict == "collapsed"
    # without the number of classes only divergence counts
    assert verdict_table(_runs(values, status), "ce", draws=2000).set_index("method").loc["broken", "n_collapsed"] == 0


def test_verdicts_intervals_and_ranks_never_contradict():
    """On a table with clear and unclear gaps, each verdict is the sign of its interval, a method better than CE
    is never 'tied with' CE, and the rank intervals follow from the same separations."""
    rng = np.random.default_rng(8)
    means = {"ce": 70.0, "a": 74.0, "b": 73.8, "c": 71.0, "d": 70.2, "e": 66.0}
    values = {m: list(mu + rng.normal(0, 0.5, 5)) for m, mu in means.items()}
    fam = Family(_runs(values), draws=4000)
    table = fam.table("ce").set_index("method")
    for m, row in table.iterrows():
        if m == "ce":
            continue
        expected = "better" if row.delta_low > 0 else "worse" if row.delta_high < 0 else "tied"
        assert row.verdict == expected
        assert (row.verdict == "tied") == ("ce" in row.tied_with)
        better = sum(fam.compare(o, m).verdict == "better" for o in means if o != m)
        worse = sum(fam.compare(o, m).verdict == "worse" for o in means if o != m)
        assert (row.rank_low, row.rank_high) == (1 + better, len(means) - worse)
    assert table.loc["a", "verdict"] == "better" and table.loc["e", "verdict"] == "worse"
    assert table.loc["a", "rank_text"] in ("1–2", "1") and table.loc["e", "rank_text"] == "6"


def test_entry_point_refuses_a_table_without_its_columns():
    with pytest.raises(ValueError, match="method, seed, value"):
        verdict_table(pd.DataFrame({"method": ["ce"], "value": [1.0]}))
