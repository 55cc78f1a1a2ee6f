"""Learning curves of a sweep: ``curves.csv`` (one row per run and epoch) and ``curves.png``.

Read from each finished student run's ``metrics.jsonl`` (written every epoch by
the trainer): test top-1, the total training loss and each weighted loss term.
The plot has one column per teacher-student pair: on top, test top-1 per epoch,
the mean over seeds as a line and the band min..max over seeds, one line per
method; below, the mean training loss per epoch (log scale), which shows a loss
that blows up or a term that dominates. ``curves.csv`` keeps every term for a
closer look (e.g. DIST's ``inter``/``intra``).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pandas as pd

from ..engine.checkpoint import atomic_write_bytes, atomic_write_text
from .store import RunStore
from .sweep import STUDENT_ROLE, Plan

CURVES_CSV, CURVES_PNG = "curves.csv", "curves.png"


def collect(plan: Plan, store: RunStore) -> pd.DataFrame:
    """One row per (student run entry, epoch): pair, label, access, seed, test top-1, losses and terms."""
    rows = []
    done: dict[str, list[dict]] = {}
    for e in plan.entries:
        if e.role != STUDENT_ROLE:
            continue
        record = store.result(e.hash)
        if not record or record.get("status") != "finished":
            continue
        if e.hash not in done:
            done[e.hash] = _read_metrics(store.run_dir(e.hash) / "metrics.jsonl")
        for m in done[e.hash]:
            row = {"teacher": e.teacher, "teacher_model": e.teacher_model, "student": e.student, "label": e.label,
                   "access": e.access, "seed": e.seed, "epoch": int(m.get("epoch", 0)),
                   "test_top1": _num(m.get("test_top1")), "train_loss": _num(m.get("train_loss"))}
            for k, v in (m.get("train") or {}).items():
                row[f"train_{k}"] = _num(v)
            rows.append(row)
    return pd.DataFrame(rows)


def _read_metrics(path: Path) -> list[dict]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            d = json.loads(line)
        except ValueError:   # a damaged line: the recovery code rewrites the file; skip it here
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def _num(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def write(plan: Plan, store: RunStore, out: Path) -> dict[str, Path]:
    """Write curves.csv and curves.png into ``out``; nothing when no run has finished."""
    df = collect(plan, store)
    if df.empty:
        return {}
    paths = {"curves_csv": out / CURVES_CSV, "curves": out / CURVES_PNG}
    atomic_write_text(paths["curves_csv"], df.to_csv(index=False))
    atomic_write_bytes(paths["curves"], plot(plan, df))
    return paths


def plot(plan: Plan, df: pd.DataFrame) -> bytes:
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(zip(df.teacher, df.student)))
    fig, axes = plt.subplots(2, len(pairs), figsize=(5.5 * len(pairs), 7.5), squeeze=False, sharex="col")
    multi_access = df.access[df.access != "none"].nunique() > 1
    for col, (teacher, student) in enumerate(pairs):
        g = df[(df.teacher == teacher) & (df.student == student)]
        top, bottom = axes[0][col], axes[1][col]
        methods = list(dict.fromkeys(zip(g.label, g.access)))
        cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
        for k, (label, access) in enumerate(methods):
            m = g[(g.label == label) & (g.access == access)]
            by_epoch = m.groupby("epoch")
            name = f"{label}" + (f" ({access})" if multi_access and access != "none" else "")
            color = cmap(k % cmap.N)
            acc = by_epoch.test_top1.agg(["mean", "min", "max"])
            top.plot(acc.index, acc["mean"], color=color, label=f"{name} (n={m.seed.nunique()})", linewidth=1.4)
            top.fill_between(acc.index, acc["min"], acc["max"], color=color, alpha=0.15, linewidth=0)
            loss = by_epoch.train_loss.mean()
            bottom.plot(loss.index, loss.values, color=color, linewidth=1.2)
        tmodel = g.teacher_model.iloc[0]
        top.set_title(f"{tmodel} → {student}", fontsize=10)
        top.set_ylabel("test top-1 (%)")
        top.grid(alpha=0.3)
        top.legend(fontsize=7, loc="lower right")
        bottom.set_yscale("log")
        bottom.set_ylabel("train loss (all terms, mean over seeds)")
        bottom.set_xlabel("epoch")
        bottom.grid(alpha=0.3)
    fig.suptitle(f"{plan.recipe}: learning curves (line: mean over seeds; band: min–max)", fontsize=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


__all__ = ["CURVES_CSV", "CURVES_PNG", "collect", "write"]
