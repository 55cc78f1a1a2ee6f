"""B2KD table from a run store: top-1 mean ± std over seeds and the teacher queries each method used.

    python results/b2kd_fashion_mnist/summarize.py results/b2kd_fashion_mnist [more run stores ...]

Reads ``plan.json`` and ``runs/<hash>/result.json`` (as written by ``kdzoo bench``); for MEKD also
``runs/<hash>/mekd_generator.json``, the queries its generator cost. (Since 6a958c6 ``result.json``
counts them in ``teacher_queries`` and alone in ``prepare_queries``; runs written before that count
only the queries of student training.) Writes ``b2kd_table.md`` into each store and copies the seed-0
generator sample grids there (``mekd-<label>_samples_seed0.png``).
"""
from __future__ import annotations

import json
import shutil
import statistics
import sys
from pathlib import Path

from kdzoo.bench.report.leaderboard import paired_ci


def _fmt_q(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def _delta(rs: list[dict], base: list[dict]) -> str:
    """Paired by seed, with a 95% t interval (as the leaderboard's Δ vs CE)."""
    base_by_seed = {x["seed"]: x["top1"] for x in base}
    d, lo, hi, n = paired_ci([x["top1"] - base_by_seed[x["seed"]] for x in rs if x["seed"] in base_by_seed])
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]" if n > 1 else f"{d:+.2f}"


def summarize(store: Path) -> str:
    plan = json.loads((store / "plan.json").read_text())
    rows: dict[tuple[str, str], list[dict]] = {}
    teacher_top1 = None
    for e in plan["entries"]:
        run = store / "runs" / e["hash"]
        if e["role"] != "student" or not (run / "result.json").is_file():
            continue
        r = json.loads((run / "result.json").read_text())
        if r.get("status") != "finished":
            continue
        gen = json.loads((run / "mekd_generator.json").read_text()) if (run / "mekd_generator.json").is_file() else {}
        teacher_top1 = r.get("teacher_top1", teacher_top1)
        gen_q = r["prepare_queries"] if "prepare_queries" in r else gen.get("queries", 0)
        distill_q = r["teacher_queries"] - r.get("prepare_queries", 0)
        rows.setdefault((e["label"], e["access"]), []).append(
            {"seed": e["seed"], "top1": r["top1"], "best": r["best_top1"], "distill_q": distill_q,
             "gen_q": gen_q, "seconds": r["train_seconds"] + gen.get("seconds", 0.0), "run": run})
    base = rows.get(("ce-pseudo", "label"))
    lines = [f"Teacher top-1 (clean test split): {teacher_top1:.2f}%" if teacher_top1 is not None else "",
             "",
             "| method | teacher access | top-1 % (mean ± std) | seeds | Δ vs ce-pseudo [95% CI] | queries: generator "
             "| queries: student training | queries: total | train s (mean) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    order = sorted(rows, key=lambda k: -statistics.mean(x["top1"] for x in rows[k]))
    for label, access in order:
        rs = sorted(rows[(label, access)], key=lambda x: x["seed"])
        top = [x["top1"] for x in rs]
        mean, std = statistics.mean(top), (statistics.stdev(top) if len(top) > 1 else 0.0)
        g, d = statistics.mean(x["gen_q"] for x in rs), statistics.mean(x["distill_q"] for x in rs)
        delta = _delta(rs, base) if base and (label, access) != ("ce-pseudo", "label") else "—"
        lines.append(f"| {label} | {access} | {mean:.2f} ± {std:.2f} | {len(rs)} | {delta} | {_fmt_q(g)} | "
                     f"{_fmt_q(d)} | {_fmt_q(g + d)} | {statistics.mean(x['seconds'] for x in rs):.0f} |")
        seed0 = [x for x in rs if x["seed"] == 0 and (x["run"] / "mekd_samples.png").is_file()]
        if seed0:
            shutil.copyfile(seed0[0]["run"] / "mekd_samples.png", store / f"{label}_samples_seed0.png")
    text = "\n".join(lines) + "\n"
    (store / "b2kd_table.md").write_text(text)
    return text


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"## {arg}\n")
        print(summarize(Path(arg)))
