"""The B2KD table from the queries study: every method at every student-phase budget, with its teacher
access, whether it sends the student side's (private) images to the teacher, its queries (generator
apart and in the total), top-1 mean ± std over seeds, and Δ against the best privacy-respecting
baseline (gen-kd-soft or gen-ce-hard: the generator-based methods other than MEKD) at the same budget,
paired by seed with a 95% t interval (the leaderboard's paired_ci).

    python results/b2kd_fashion_mnist/summarize.py OUT [OUT ...]

Reads ``OUT/b2kd_queries.csv`` (benchmarks/b2kd_queries.py) and the runs in ``OUT/runs``; writes
``OUT/b2kd_table.md`` and copies the seed-0 generator sample grids there
(``<label>_samples_seed0.png``).
"""
from __future__ import annotations

import csv
import json
import shutil
import statistics
import sys
from pathlib import Path

from kdzoo.bench.leaderboard import paired_ci
from kdzoo.engine import runfolder

MEKD = "mekd"


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


def summarize(store: Path) -> str:
    rows = list(csv.DictReader((store / "b2kd_queries.csv").open()))
    groups = _groups(rows)
    mean = {k: statistics.mean(float(r["top1"]) for r in g.values()) for k, g in groups.items()}
    lines = ["| student-phase queries | method | access | private images to teacher | queries: generator "
             "| queries: total | top-1 % (mean ± std) | seeds | Δ vs best privacy-respecting baseline [95% CI] |",
             "|---:|---|---|---|---:|---:|---:|---:|---|"]
    for budget, phase in sorted({k[:2] for k in groups}, key=lambda b: (b[1] == "every step", b[0])):
        here = sorted((k for k in groups if k[:2] == (budget, phase)), key=lambda k: -mean[k])
        baselines = [k for k in here if k[5] == "no" and k[4] != MEKD]
        best = baselines[0] if baselines else None
        for k in here:
            top = [float(r["top1"]) for r in groups[k].values()]
            gen = statistics.mean(int(r["prepare_queries"]) for r in groups[k].values())
            total = statistics.mean(int(r["teacher_queries"]) for r in groups[k].values())
            if best is None or k == best:
                delta = "— (reference)" if k == best else "—"
            else:
                d, lo, hi, n = paired_ci([float(r["top1"]) - float(groups[best][s]["top1"])
                                          for s, r in groups[k].items() if s in groups[best]])
                delta = f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}] vs {best[2]}" if n > 1 else f"{d:+.2f} vs {best[2]}"
            std = statistics.stdev(top) if len(top) > 1 else 0.0
            shown = f"{_q(budget)} ({'every step' if phase == 'every step' else 'once'})"
            lines.append(f"| {shown} | {k[2]} | {k[3]} | {k[5]} | {_q(gen)} | {_q(total)} | "
                         f"{statistics.mean(top):.2f} ± {std:.2f} | {len(top)} | {delta} |")
    first = json.loads((store / "runs" / rows[0]["hash"] / runfolder.RESULT).read_text())
    text = f"Teacher top-1 (clean test split): {first['teacher_top1']:.2f}%\n\n" + "\n".join(lines) + "\n"
    (store / "b2kd_table.md").write_text(text)
    for r in rows:   # what each seed-0 generator makes (one grid per label)
        grid = store / "runs" / r["hash"] / runfolder.prepared_file("samples.png")
        if r["seed"] == "0" and r["method"] == MEKD and not int(r["pool"]) and grid.is_file():
            shutil.copyfile(grid, store / f"{r['label']}_samples_seed0.png")
    return text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"## {arg}\n")
        print(summarize(Path(arg)))
