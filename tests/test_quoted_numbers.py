"""Numbers quoted in README.md, docs/*.md and results/*/*.md match the CSVs they come from.

The checker does not know the documents' layout, so prose can be rewritten freely: it finds every
"mean ± std" and every "Δ [low, high]" next to a method name (in a table row whose first cell names
the method, or after a backticked method name in a sentence) and looks the number up among what the
committed CSVs give for that method: per-seed rows (mean ± std over the seeds of any grouping by
student, access and study settings), summary tables (``*_mean`` / ``*_std`` columns, differences
with their intervals), and paired differences between two methods over common seeds. A number not
found is reported with its file and line. A results folder's documents are checked against that
folder's CSVs; README.md, CONTRIBUTING.md and docs/*.md against all of them.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from kdzoo.stats import mean_std, paired_ci

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
NUM = r"[+\-−]?\d+\.\d+"
PM = re.compile(rf"({NUM}) ± (\d+\.\d+)")
DELTA = re.compile(rf"([+\-−]\d+\.\d+) \[({NUM}), ({NUM})\]")
GROUPS = ["student", "teacher", "access", "study", "query_fraction", "gen_steps", "epochs", "steps_per_epoch"]


def _n(text: str) -> str:
    return text.replace("−", "-")


def _fmt(x: float, sign: bool = False) -> str:
    return _n(f"{x:+.2f}" if sign else f"{x:.2f}")


def _per_seed(df: pd.DataFrame, quotes: dict, pairs: list) -> None:
    if "role" in df.columns:
        df = df[df.role == "student"]
    if "status" in df.columns:
        df = df[df.status == "finished"]
    keys = [c for c in GROUPS if c in df.columns]
    values = [c for c in ("top1", "best_top1", "top1_at_best_val") if c in df.columns]
    for group, g in df.groupby(["label"] + keys, dropna=False):
        for col in values:
            m, s, n = mean_std(g[col])
            if n > 1:
                quotes.setdefault(group[0], set()).add((_fmt(m), _fmt(s)))
    if "top1" in df.columns:   # methods at different access levels are compared too (b2kd: kd-probs vs ce-pseudo)
        keys = [c for c in keys if c != "access"]
        for _, g in df.groupby(keys, dropna=False) if keys else [((), df)]:
            pairs.append({lab: dict(zip(x.seed, x.top1)) for lab, x in g.groupby("label")})


def _summary(df: pd.DataFrame, quotes: dict, deltas: dict) -> None:
    pairs = [(c, c[:-5] + "_std") for c in df.columns if c.endswith("_mean") and c[:-5] + "_std" in df.columns]
    pairs += [(a, b) for a, b in (("mean", "std"), ("mean_all", "std_all")) if a in df.columns and b in df.columns]
    intervals = [(c, c + "_low", c + "_high") for c in df.columns if c + "_low" in df.columns and c + "_high" in df]
    for _, row in df.iterrows():
        for a, b in pairs:
            if row[a] == row[a] and row[b] == row[b]:
                quotes.setdefault(row["label"], set()).add((_fmt(row[a]), _fmt(row[b])))
        for d, lo, hi in intervals:
            if row[lo] == row[lo]:
                deltas.setdefault(row["label"], set()).add((_fmt(row[d], True), _fmt(row[lo], True),
                                                            _fmt(row[hi], True)))


def lookup(folder: Path) -> tuple[dict, dict, list]:
    """label -> {(mean, std)} and label -> {(delta, low, high)} as two-decimal strings from a folder's CSVs, and
    the per-seed values of each group of runs (for paired differences, computed when a quote needs them)."""
    quotes: dict = {}
    deltas: dict = {}
    pairs: list = []
    for csv in sorted(folder.rglob("*.csv")):
        df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        if "label" not in df.columns:
            continue
        df["label"] = df["label"].astype(str)
        if "seed" in df.columns:
            _per_seed(df, quotes, pairs)
        else:
            _summary(df, quotes, deltas)
    return quotes, deltas, pairs


def paired(pairs: list, label: str) -> set:
    """(delta, low, high) of ``label`` minus every other method of its groups, paired by seed (95% t)."""
    out = set()
    for by in pairs:
        for other in (o for o in by if o != label and label in by):
            common = sorted(set(by[label]) & set(by[other]))
            mean, low, high, n = paired_ci([by[label][s] - by[other][s] for s in common])
            if n > 1:
                out.add((_fmt(mean, True), _fmt(low, True), _fmt(high, True)))
    return out


def quoted(text: str, labels: set[str]) -> list[tuple[int, str, str, tuple[str, ...]]]:
    """(line, label, kind, numbers) for every quoted mean ± std or Δ [low, high] beside a known method name."""
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        first = None
        if line.startswith("|"):
            cell = line.split("|")[1].strip()
            name = re.sub(r"\*\*|`", "", cell).split(" ")[0] if cell else ""
            first = name if name in labels else None
        for kind, pattern in (("pm", PM), ("delta", DELTA)):
            for m in pattern.finditer(line):
                label = first
                if label is None:   # a sentence: the closest backticked method name before the number
                    named = [x for x in re.findall(r"`([^`]+)`", line[:m.start()]) if x in labels]
                    label = named[-1] if named else None
                if label is not None:
                    out.append((no, label, kind, tuple(_n(g) for g in m.groups())))
    return out


def test_quoted_numbers_match_the_csvs():
    # README.md and the pages its sections moved to quote any results folder; a results folder's documents its own
    everywhere = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    documents = [(md, RESULTS) for md in everywhere] + [(md, md.parent) for md in sorted(RESULTS.glob("*/*.md"))]
    tables = {folder: lookup(folder) for folder in {f for _, f in documents}}
    wrong, checked = [], 0
    for doc, folder in documents:
        quotes, deltas, pairs = tables[folder]
        labels = set(quotes) | set(deltas) | {lab for by in pairs for lab in by}
        for no, label, kind, nums in quoted(doc.read_text(encoding="utf-8"), labels):
            checked += 1
            if kind == "pm":
                ok = nums in quotes.get(label, set())
            else:
                ok = nums in deltas.get(label, set()) or nums in paired(pairs, label)
            if not ok:
                wrong.append(f"{doc.relative_to(ROOT)}:{no}: `{label}` {nums} is in no CSV of {folder.name}/")
    assert not wrong, "\n".join(wrong)
    assert checked >= 100   # the checker finds the numbers (the committed leaderboards alone quote hundreds)


def test_the_checker_catches_a_drifted_number():
    quotes, deltas, pairs = lookup(RESULTS / "quickstart")
    labels = set(quotes)
    good = quoted("| `kd` | 75.16 ± 0.86 |", labels)
    assert good == [(1, "kd", "pm", ("75.16", "0.86"))] and good[0][3] in quotes["kd"]
    assert quoted("| `kd` | 75.61 ± 0.86 |", labels)[0][3] not in quotes["kd"]
    line = quoted("Plain `kd` gains +1.45 [−0.36, +3.26] over CE.", labels)
    assert line == [(1, "kd", "delta", ("+1.45", "-0.36", "+3.26"))] and line[0][3] in paired(pairs, "kd")
    assert ("+1.45", "-0.36", "+3.27") not in paired(pairs, "kd") | deltas.get("kd", set())
