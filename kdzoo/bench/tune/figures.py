"""The tuning figures: is the budget enough (``tuning.png``), and how forgiving is each method (``sensitivity.png``).

- ``tuning.png``: one small panel per method: the best validation top-1 found so far against the trial
  number, one line per study (student, or pair), every trial a mark (pruned ones as crosses, at the value
  they had when stopped). A line still climbing at the last trial says the budget was short.
- ``sensitivity.png``: one panel per pair: per method, every trial's validation top-1 as a mark (pruned
  ones as crosses), the interquartile range and median of the trials trained to the end as a box, chance
  as a dotted line (the counting rules of report.py).
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...engine.checkpoint import atomic_write_bytes
from .report import trial_scores

TUNING_PNG, SENSITIVITY_PNG = "tuning.png", "sensitivity.png"


def _pyplot() -> Any:
    import matplotlib  # only when a figure is drawn (start-up time of every other command)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _who(study: dict[str, Any], many_teachers: bool) -> str:
    teacher, _, student, _ = study["rows"][0]
    alone = "->" not in study["name"]
    return student if alone or not many_teachers else f"{teacher}→{student}"


def best_so_far_figure(trials: pd.DataFrame, meta: dict[str, Any]) -> Any:
    plt = _pyplot()
    chance = float(meta.get("chance", math.nan))
    studies = meta["studies"]
    labels = list(dict.fromkeys(s["label"] for s in studies))
    many = len({r[0] for s in studies for r in s["rows"]}) > 1
    students = list(dict.fromkeys(_who(s, many) for s in studies))
    ncols = min(5, max(len(labels), 1))
    nrows = math.ceil(max(len(labels), 1) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.1 * nrows + 0.6), squeeze=False)
    scores = trial_scores(trials, chance)
    for ax, label in zip(axes.flat, labels):
        for s in (s for s in studies if s["label"] == label):
            t = trials[trials.study == s["name"]].sort_values("number")
            v = scores[t.index]
            colour = f"C{students.index(_who(s, many)) % 10}"
            best = pd.to_numeric(t.value.where(t.status == "finished"), errors="coerce").cummax().ffill()
            x = t.number + 1
            ax.step(x, best, where="post", color=colour, label=_who(s, many))
            pruned = t.status == "pruned"
            ax.scatter(x[~pruned], v[~pruned], s=9, color=colour, alpha=0.5, zorder=3)
            ax.scatter(x[pruned], v[pruned], s=12, marker="x", color=colour, alpha=0.4, zorder=3)
        if chance == chance:
            ax.axhline(chance, color="0.6", linestyle=":", linewidth=1)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0.5, max(int(meta.get("trials", 1)), 1) + 0.5)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("val top-1 (%)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("trial", fontsize=8)
    handles = [plt.Line2D([], [], color=f"C{i % 10}", label=f"best so far, {w}") for i, w in enumerate(students)]
    handles += [plt.Line2D([], [], marker="x", color="0.4", linestyle="", label="pruned trial (value when stopped)"),
                plt.Line2D([], [], color="0.6", linestyle=":", label="chance")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=7, frameon=False)
    fig.suptitle("Validation top-1: best finished trial so far, per method", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def sensitivity_figure(trials: pd.DataFrame, meta: dict[str, Any]) -> Any:
    plt = _pyplot()
    chance = float(meta.get("chance", math.nan))
    studies = meta["studies"]
    pairs = list(dict.fromkeys((r[0], r[2]) for s in studies for r in s["rows"]))
    scores = trial_scores(trials, chance)
    tall = max(sum(1 for s in studies if any((r[0], r[2]) == p for r in s["rows"])) for p in pairs) if pairs else 1
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(max(4.6 * len(pairs), 6.4), 1.3 + 0.32 * tall),
                             squeeze=False)
    ended = trial_scores(trials, chance, pruned=False)
    for ax, (teacher, student) in zip(axes.flat, pairs):
        mine = [s for s in studies if any(r[0] == teacher and r[2] == student for r in s["rows"])]
        ys = list(range(len(mine)))[::-1]
        for y, s in zip(ys, mine):
            t = trials[trials.study == s["name"]]
            v = scores[t.index].dropna()
            box = ended[t.index].dropna()
            if len(box):
                q25, med, q75 = (float(box.quantile(q)) for q in (0.25, 0.5, 0.75))
                ax.barh(y, q75 - q25, left=q25, height=0.6, fill=False, edgecolor="0.3", linewidth=1)
                ax.plot([med, med], [y - 0.3, y + 0.3], color="C1", linewidth=1.5)
            if len(v):
                ys_ = [y + ((n * 0.618) % 1 - 0.5) * 0.4 for n in t.number[v.index]]   # spread, not random
                pruned = (t.status[v.index] == "pruned").to_numpy()
                ax.scatter(v[~pruned], [a for a, p in zip(ys_, pruned) if not p], s=9, color="C0", alpha=0.6,
                           zorder=3)
                ax.scatter(v[pruned], [a for a, p in zip(ys_, pruned) if p], s=12, marker="x", color="C0",
                           alpha=0.5, zorder=3)
        if chance == chance:
            ax.axvline(chance, color="0.5", linestyle=":", linewidth=1)
        ax.set_yticks(ys)
        ax.set_yticklabels([s["label"] for s in mine], fontsize=8)
        ax.set_ylim(-0.7, len(mine) - 0.3)
        ax.set_title(f"{teacher} → {student}", fontsize=9)
        ax.set_xlabel("validation top-1 of each trial (%)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Sensitivity: each trial (×: pruned, at its value when stopped); trials trained to the end:\n"
                 "interquartile range (box), median (orange); chance (dotted)", fontsize=9)
    fig.tight_layout()
    return fig


def _save(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write(out: Path, trials: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Path]:
    if not len(trials):
        return {}
    paths = {"tuning_plot": Path(out) / TUNING_PNG, "sensitivity_plot": Path(out) / SENSITIVITY_PNG}
    _save(best_so_far_figure(trials, meta), paths["tuning_plot"])
    _save(sensitivity_figure(trials, meta), paths["sensitivity_plot"])
    return paths


__all__ = ["SENSITIVITY_PNG", "TUNING_PNG", "best_so_far_figure", "sensitivity_figure", "write"]
