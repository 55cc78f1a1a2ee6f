"""``leaderboard.png``: per teacher-student pair, each method's difference to the student alone (CE)
with its simultaneous 95% interval, coloured by the verdict read off that interval.

Methods without a verdict (most seeds collapsed, too few seeds) keep their row, with their outcome
written instead of a point; CE itself is the diamond at 0. A pair without a tested CE row shows
each method's kept seeds as dots and their mean ± std instead. ``figure`` builds the matplotlib
figure (tests read its content); ``plot`` writes it.
"""
from __future__ import annotations

import io
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ...engine.checkpoint import atomic_write_bytes
from ..plan import STUDENT_ROLE, Plan

COLORS = {"better": "C2", "worse": "C3", "tied": "0.45"}


def _names(g: pd.DataFrame) -> list[str]:
    """Method labels, with the access level where one label runs at several."""
    several = g.label.duplicated(keep=False)
    return [f"{r.label}" + (f" ({r.access})" if twice else "") for r, twice in zip(g.itertuples(), several)]


def _delta_panel(ax: Any, g: pd.DataFrame) -> None:
    """Δ vs CE with simultaneous intervals; an interval far wider than the others is cut at the axis edge."""
    shown = g[g.delta_ce.notna()]
    widths = (shown.delta_ce_high - shown.delta_ce_low).dropna()
    typical = shown[(shown.delta_ce_high - shown.delta_ce_low) <= 3 * widths.median()] if len(widths) else shown
    lo = min([0.0] + typical.delta_ce_low.dropna().tolist() + typical.delta_ce.tolist())
    hi = max([0.0] + typical.delta_ce_high.dropna().tolist() + typical.delta_ce.tolist())
    pad = 0.08 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    for y, r in zip(range(len(g))[::-1], g.itertuples()):
        if r.delta_ce == r.delta_ce:
            color = COLORS.get(r.vs_ce, "0.45")
            x, a, b = (min(max(v, lo), hi) for v in (r.delta_ce, r.delta_ce_low, r.delta_ce_high))
            ax.errorbar(x, y, xerr=[[x - a], [b - x]], fmt="o", color=color, capsize=3, zorder=3)
            if r.delta_ce_low < lo or r.delta_ce_high > hi:   # cut at the edge: the numbers say where it lies
                ax.text(hi if r.delta_ce_low >= lo else lo, y + 0.3,
                        f"{r.delta_ce:+.1f} [{r.delta_ce_low:+.1f}, {r.delta_ce_high:+.1f}]",
                        ha="right" if r.delta_ce_low >= lo else "left", va="center", fontsize=7, color=color)
        elif r.outcome == "tested":   # the reference itself
            ax.plot([0.0], [y], marker="D", color="0.2", linestyle="", zorder=3)
        else:
            why = r.collapsed if isinstance(r.collapsed, str) and r.collapsed else f"{r.outcome}: no verdict"
            ax.text(lo, y, f"  {why}", va="center", fontsize=7, color="0.3")
    ax.axvline(0.0, color="0.4", linestyle="--", linewidth=1, zorder=1)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("Δ vs CE, top-1 points (simultaneous 95%)")


def _means_panel(ax: Any, g: pd.DataFrame, runs: pd.DataFrame, metric: str) -> None:
    for y, r in zip(range(len(g))[::-1], g.itertuples()):
        seeds = runs[(runs.label == r.label) & (runs.access == r.access) & (runs.status == "finished")]
        ax.scatter(seeds[metric], [y] * len(seeds), s=14, color="0.6", zorder=2)
        if r.mean == r.mean:
            ax.errorbar(r.mean, y, xerr=0 if r.std != r.std else r.std, fmt="o", color="C0", capsize=3, zorder=3)
    ax.set_xlabel(f"{metric} (%), mean ± std of the kept seeds")


def figure(plan: Plan, df: pd.DataFrame, summary: pd.DataFrame) -> Any:
    """The leaderboard figure (matplotlib); one panel per pair."""
    # matplotlib only when a plot is drawn: pyplot costs about 0.5 s of start-up for every bench command
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(zip(summary.teacher, summary.student))) if len(summary) else []
    n = max(len(pairs), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    per_panel = max((len(summary[(summary.teacher == t) & (summary.student == s)]) for t, s in pairs), default=1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.6 * ncols, 1.0 + 0.36 * per_panel * nrows + 0.7 * nrows),
                             squeeze=False)
    students = df[df.role == STUDENT_ROLE]
    any_delta = False
    for ax, (teacher, student) in zip(axes.flat, pairs):
        g = summary[(summary.teacher == teacher) & (summary.student == student)]
        g = g.sort_values(["rank", "mean"], ascending=[True, False], na_position="last").reset_index(drop=True)
        names = _names(g)
        if g.delta_ce.notna().any():
            _delta_panel(ax, g)
            any_delta = True
        else:
            _means_panel(ax, g, students[(students.teacher == teacher) & (students.student == student)], g.metric.iloc[0])
        ax.set_yticks(list(range(len(g)))[::-1])
        ax.set_yticklabels(names)
        tmodel = df[df.teacher == teacher].teacher_model.iloc[0]
        t1 = df[df.teacher == teacher].teacher_top1.dropna()
        ax.set_title(f"{tmodel} → {student}" + (f"\nteacher {t1.iloc[0]:.2f}" if len(t1) else ""), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(g) - 0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    if any_delta:
        handles = [plt.Line2D([], [], marker="o", color=c, label=v) for v, c in COLORS.items()]
        handles.append(plt.Line2D([], [], color="0.4", linestyle="--", label="CE (student alone)"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{plan.recipe} ({plan.dataset})", fontsize=11)
    with warnings.catch_warnings():   # very long labels: matplotlib warns and keeps the default layout
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot(plan: Plan, df: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(plan, df, summary)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # a unique temporary file per writer: two bench processes may rebuild at once
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["figure", "plot"]
