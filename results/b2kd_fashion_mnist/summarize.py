"""The B2KD table from the queries study: every method at every student-phase budget, with its teacher
access, whether it sends the student side's (private) images to the teacher, its queries (generator
apart and in the total), top-1 mean ± std over seeds, and its difference to the best privacy-respecting
baseline (gen-kd-soft or gen-ce-hard: the generator-based methods other than MEKD) at the same budget,
and, for MEKD, its difference to the same generator with direct logit alignment (gen-kd-soft for soft
responses, gen-ce-hard for hard ones): MEKD's own claim.

The methods of one budget form one family (kdzoo.stats, docs/statistics.md): every pair gets a
simultaneous 95% interval paired by seed, and the verdict beside a difference is read off the interval
printed with it. Because the intervals hold for every pair at once, naming the best baseline after
seeing the means does not change what they cover. A seed at or below the collapse threshold is named
and left out, as in every kdzoo table.

    python results/b2kd_fashion_mnist/summarize.py OUT [OUT ...]

Reads ``OUT/b2kd_queries.csv`` (benchmarks/b2kd_queries.py) and the runs in ``OUT/runs``; writes
``OUT/b2kd_table.md`` (and its numbers as ``b2kd_table.csv``) and copies the seed-0 generator sample grids there
(``<label>_samples_seed0.png``).
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from kdzoo.engine import runfolder
from kdzoo.stats.verdicts import Family, rank_text

CLASSES = 10     # Fashion-MNIST: the collapse threshold's chance level

MEKD = "mekd"
DIRECT = {"probs": "gen-kd-soft", "label": "gen-ce-hard"}   # MEKD's direct-alignment twin per teacher access


def _q(x: float) -> str:
    return f"{x / 1000:,.1f}k" if x >= 1000 else f"{x:.0f}"


def _groups(rows: list[dict]) -> dict[tuple, dict[int, dict]]:
    """(budget, phase, label, access, method, private) -> {seed: row}; budget: the student phase's queries."""
    out: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        if r["status"] == runfolder.FINISHED:
            phase = "every step" if r["private_images"] == "no" and not int(r["pool"]) else "once"
            key = (int(r["student_queries"]), phase, r["label"], r["access"], r["method"], r["private_images"])
            out.setdefault(key, {})[int(r["seed"])] = r
    return out


def _compare(family: Family, k: tuple, other: tuple | None) -> tuple[str, dict[str, Any]]:
    """The cell 'Δ [low, high] vs OTHER: verdict' for k - other, and the same as CSV fields."""
    if other is None or other == k or other not in family.methods:
        return "—", {}
    c = family.compare(k, other)
    if c.diff != c.diff:
        return c.verdict, {}
    cell = f"{c.diff:+.2f} [{c.low:+.2f}, {c.high:+.2f}] vs {other[2]}: {c.verdict}"
    return cell, {"": c.diff, "_low": c.low, "_high": c.high, "_verdict": c.verdict, "_vs": other[2]}


def summarize(store: Path) -> str:
    rows = list(csv.DictReader((store / "b2kd_queries.csv").open()))
    groups = _groups(rows)
    lines = ["| student-phase queries | method | access | private images to teacher | queries: generator "
             "| queries: total | top-1 % (mean ± std) | seeds | rank | Δ vs best privacy-respecting baseline "
             "[simultaneous 95%] | Δ vs the same generator with direct alignment [simultaneous 95%] |",
             "|---:|---|---|---|---:|---:|---:|---:|---:|---|---|"]
    records: list[dict[str, Any]] = []
    for budget, phase in sorted({k[:2] for k in groups}, key=lambda b: (b[1] == "every step", b[0])):
        here = [k for k in groups if k[:2] == (budget, phase)]
        runs = pd.DataFrame([{"method": k, "seed": s, "value": float(r["top1"]), "status": r["status"]}
                             for k in here for s, r in groups[k].items()])
        family = Family(runs, classes=CLASSES)
        table = {row["method"]: row for row in family.table().to_dict("records")}
        here.sort(key=lambda k: -table[k]["mean"] if table[k]["mean"] == table[k]["mean"] else math.inf)
        baselines = [k for k in here if k[5] == "no" and k[4] != MEKD and k in family.tested]
        best = baselines[0] if baselines else None
        for k in here:
            t = table[k]
            gen = sum(int(r["prepare_queries"]) for r in groups[k].values()) / len(groups[k])
            total = sum(int(r["teacher_queries"]) for r in groups[k].values()) / len(groups[k])
            vs_best, best_fields = ("— (reference)", {}) if k == best else _compare(family, k, best)
            # MEKD's own question: the same generator and student steps, the loss aligning logits directly
            direct = DIRECT.get(k[3]) if k[4] == MEKD else None
            twin = next((o for o in here if o[4] == direct), None)
            vs_direct, direct_fields = _compare(family, k, twin)
            std = "" if t["std"] != t["std"] else f" ± {t['std']:.2f}"
            seeds = f"{int(t['n_kept'])}" + (f" ({t['collapsed']})" if t["collapsed"] else "")
            shown = f"{_q(budget)} ({'every step' if phase == 'every step' else 'once'})"
            mean = "—" if t["mean"] != t["mean"] else f"{t['mean']:.2f}"
            rank = rank_text(family.rank_interval(k))
            lines.append(f"| {shown} | {k[2]} | {k[3]} | {k[5]} | {_q(gen)} | {_q(total)} | {mean}{std} | "
                         f"{seeds} | {rank} | {vs_best} | {vs_direct} |")
            record = {"student_queries": budget, "phase": phase, "label": k[2], "access": k[3],
                      "private_images": k[5], "generator_queries": gen, "total_queries": total,
                      "mean": t["mean"], "std": t["std"], "n_kept": t["n_kept"], "collapsed": t["collapsed"],
                      "rank": rank}
            record.update({f"vs_best{key}": v for key, v in best_fields.items()})
            record.update({f"vs_direct{key}": v for key, v in direct_fields.items()})
            records.append(record)
    first = json.loads((store / "runs" / rows[0]["hash"] / runfolder.RESULT).read_text())
    text = f"Teacher top-1 (clean test split): {first['teacher_top1']:.2f}%\n\n" + "\n".join(lines) + "\n"
    (store / "b2kd_table.md").write_text(text)
    pd.DataFrame(records).to_csv(store / "b2kd_table.csv", index=False)
    for r in rows:   # what each seed-0 generator makes (one grid per label)
        grid = store / "runs" / r["hash"] / runfolder.prepared_file("samples.png")
        if r["seed"] == "0" and r["method"] == MEKD and not int(r["pool"]) and grid.is_file():
            shutil.copyfile(grid, store / f"{r['label']}_samples_seed0.png")
    return text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"## {arg}\n")
        print(summarize(Path(arg)))
