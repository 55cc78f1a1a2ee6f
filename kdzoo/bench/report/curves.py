"""Learning curves of a sweep: ``curves.csv`` (one row per run and epoch) and ``curves.png``.

Read from each finished student run's ``metrics.jsonl`` (written every epoch by
the trainer): test top-1, the total training loss and each weighted loss term.
The plot is small multiples, so that each of many methods (24 in the
Fashion-MNIST comparison) can be found: per teacher-student pair, one cell per
method with its name as title, two panels each. Above, test top-1 per epoch (the
mean over seeds as a line, the band min..max over seeds) with the student alone
(CE) dashed for comparison; below, the training loss relative to the method's
own first epoch (per seed, then the mean), which compares across methods whose
losses have different scales (CE about 1, DKD about 10) and still shows a loss
that blows up or stalls (each loss panel keeps its own scale, so one blow-up does not
flatten the rest). Epochs are integers on every axis. ``curves.csv``
keeps every term for a closer look (e.g. DIST's ``inter``/``intra``).
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...engine.checkpoint import atomic_write_bytes, atomic_write_text
from ...engine.runfolder import METRICS
from ..execution.store import RunStore
from ..plan import STUDENT_ROLE, Plan
from .leaderboard import reference_label

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
            done[e.hash] = _read_metrics(store.run_dir(e.hash) / METRICS)
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


COLUMNS_PER_ROW = 4   # method cells side by side


def relative_loss(df: pd.DataFrame) -> pd.Series:
    """Each row's training loss over its own run's first-epoch loss (NaN where that is not positive)."""
    keys = ["teacher", "student", "label", "access", "seed"]
    first = df.sort_values("epoch").groupby(keys).train_loss.transform("first")
    return df.train_loss / first.where(first > 0)


def figure(plan: Plan, df: pd.DataFrame) -> Any:
    """The curves as a matplotlib Figure (see the module docstring); ``plot`` renders it."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    df = df.assign(relative_loss=relative_loss(df))
    pairs = list(dict.fromkeys(zip(df.teacher, df.student)))
    multi_access = df.access[df.access != "none"].nunique() > 1
    ce = reference_label(plan, "ce")
    groups = [(pair, list(dict.fromkeys(zip(g.label, g.access))))
              for pair, g in ((p, df[(df.teacher == p[0]) & (df.student == p[1])]) for p in pairs)]
    ncols = min(COLUMNS_PER_ROW, max(len(m) for _, m in groups))
    rows = [math.ceil(len(m) / ncols) for _, m in groups]
    fig = plt.figure(figsize=(3.2 * ncols, 0.8 + 3.4 * sum(rows) + 0.4 * len(pairs)), layout="constrained")
    subfigs = fig.subfigures(len(pairs), 1, height_ratios=rows, squeeze=False)[:, 0]
    for sub, ((teacher, student), methods), n_rows in zip(subfigs, groups, rows):
        g = df[(df.teacher == teacher) & (df.student == student)]
        axes = sub.subplots(2 * n_rows, ncols, squeeze=False, gridspec_kw={"height_ratios": [1.5, 1] * n_rows})
        base = g[g.label == ce] if ce is not None else g.iloc[:0]
        base_acc, base_loss = (base.groupby("epoch")[c].mean() for c in ("test_top1", "relative_loss"))
        for k, (label, access) in enumerate(methods):
            r, c = divmod(k, ncols)
            top, bottom = axes[2 * r][c], axes[2 * r + 1][c]
            if k:   # one top-1 scale per pair; each loss panel its own (one blow-up must not flatten the rest)
                top.sharey(axes[0][0])
            bottom.sharex(top)
            bottom.axhline(1.0, color="0.8", linewidth=0.8)
            m = g[(g.label == label) & (g.access == access)]
            acc = m.groupby("epoch").test_top1.agg(["mean", "min", "max"])
            loss = m.groupby("epoch").relative_loss.mean()
            name = f"{label}" + (f" ({access})" if multi_access and access != "none" else "")
            top.set_title(f"{name} (n={m.seed.nunique()})", fontsize=9)
            if label != ce and len(base_acc):
                top.plot(base_acc.index, base_acc.values, color="0.5", linestyle="--", linewidth=1, label=ce)
                bottom.plot(base_loss.index, base_loss.values, color="0.5", linestyle="--", linewidth=1, label=ce)
            top.fill_between(acc.index, acc["min"], acc["max"], color="C0", alpha=0.2, linewidth=0)
            top.plot(acc.index, acc["mean"], color="C0", linewidth=1.5, label=name)
            bottom.plot(loss.index, loss.values, color="C1", linewidth=1.5, label=name)
            for ax in (top, bottom):
                ax.grid(alpha=0.3)
                ax.tick_params(labelsize=7)
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            top.tick_params(labelbottom=False)
            if c == 0:
                top.set_ylabel("test top-1 (%)", fontsize=8)
                bottom.set_ylabel("loss / epoch 1", fontsize=8)
            if k >= len(methods) - ncols:
                bottom.set_xlabel("epoch", fontsize=8)
        for k in range(len(methods), n_rows * ncols):    # the empty cells of the last row
            r, c = divmod(k, ncols)
            axes[2 * r][c].axis("off")
            axes[2 * r + 1][c].axis("off")
        sub.suptitle(f"{g.teacher_model.iloc[0]} → {student}", fontsize=11, fontweight="bold")
    fig.suptitle(f"{plan.recipe}: learning curves per method. Above: test top-1, mean over seeds (band: "
                 f"min–max){'; dashed: ' + ce + ', the student alone' if ce else ''}. Below: training loss "
                 f"relative to the method's first epoch.", fontsize=9, wrap=True)
    return fig


def plot(plan: Plan, df: pd.DataFrame) -> bytes:
    import warnings

    import matplotlib.pyplot as plt

    fig = figure(plan, df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


__all__ = ["CURVES_CSV", "CURVES_PNG", "collect", "figure", "relative_loss", "write"]
