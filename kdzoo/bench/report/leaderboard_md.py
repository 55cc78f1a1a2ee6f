"""``leaderboard.md``: the summary of a sweep as a Markdown page (tables per pair and access level,
the seeds each mean rests on, intervals and verdicts; see leaderboard.py for the numbers)."""
from __future__ import annotations

import math

import pandas as pd

from ..plan import STUDENT_ROLE, TEACHER_ROLE, Plan
from .leaderboard import METRIC_NAMES, known_classes, ranked_metric


def _f(x: float, nd: int = 2) -> str:
    return "—" if x != x else f"{x:.{nd}f}"


def _pm(mean: float, std: float) -> str:
    return "—" if mean != mean else _f(mean) + (f" ± {_f(std)}" if std == std else "")


def _delta(row: pd.Series, name: str) -> str:
    mean, low, high = row[f"delta_{name}"], row[f"delta_{name}_low"], row[f"delta_{name}_high"]
    if mean != mean:
        return "—"
    return f"{mean:+.2f}" + (f" [{low:+.2f}, {high:+.2f}]" if low == low else "")


def _seeds(row: pd.Series) -> str:
    """Seeds in the tests out of those planned, then the collapsed ones with their values."""
    collapsed = row.collapsed if isinstance(row.collapsed, str) else ""
    return f"{int(row.n_kept)}/{int(row.n_seeds)}" + (f", {collapsed}" if collapsed else "")


def markdown(plan: Plan, df: pd.DataFrame, summary: pd.DataFrame, classes: int | None = None) -> str:
    from ...stats import ALPHA, COLLAPSE_MARGIN, collapse_threshold

    metric = ranked_metric(plan)
    seeds = sorted(df[df.role == STUDENT_ROLE].seed.unique().tolist())
    counts = df.drop_duplicates("config_hash").status.value_counts()
    classes = known_classes(df, classes)
    limit = collapse_threshold(classes)
    lines = [f"# Leaderboard: {plan.recipe}", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [f"Dataset `{plan.dataset}`; ranked on {METRIC_NAMES[metric]}; seeds {', '.join(map(str, seeds))}."
              + (" (The plan asked for `best_top1`, an epoch picked on the test split; ranked on the last epoch "
                 "instead.)" if plan.metric != metric else ""),
              "",
              "Statistics (docs/statistics.md): a seed is **collapsed** when its run diverged"
              + (f" or ended at or below {limit:.2f}% top-1 (chance plus {COLLAPSE_MARGIN:.0%} of the way to 100%)"
                 if limit == limit else " (number of classes unknown: no margin of chance applied)")
              + "; collapsed seeds are listed, not averaged, and left out of the tests; a method with most seeds "
              "collapsed gets no verdict. Mean ± std over the other seeds. All methods of a pair form one family: "
              "a two-way model (method and seed effects, a spread per method) gives every difference a "
              f"simultaneous {1 - ALPHA:.0%} interval, and every verdict is read off those intervals: `better` / "
              "`worse` when the interval to CE excludes 0, else `tied`. Δ vs CE and Δ vs KD (at the same teacher "
              "access) are seed-adjusted differences with these intervals. `rank`: the ranks the data allow, "
              "1 + the methods significantly better to the number of methods minus those significantly worse; "
              "all intervals and ranks hold together with 95% confidence.",
              "", "Runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    teachers = {t: v for t, v in zip(df.teacher, df.teacher_top1) if v == v}
    pub_teacher = {(r["teacher"], r["student"]): r for r in plan.reference if r["method"] == TEACHER_ROLE}
    has_pub = bool(plan.reference) and summary.get("published_top1", pd.Series(dtype=float)).notna().any()
    has_val = metric != "top1_at_best_val" and summary.get("top1_at_best_val_mean",
                                                            pd.Series(dtype=float)).notna().any()
    for (teacher, student), g in (summary.groupby(["teacher", "student"], sort=False) if len(summary) else []):
        tmodel = df[df.teacher == teacher].teacher_model.iloc[0]
        head = f"## {tmodel} → {student}" + (f" (teacher `{teacher}`)" if teacher != tmodel else "")
        tline = f"Teacher top-1: {_f(teachers.get(teacher, math.nan))}"
        if (teacher, student) in pub_teacher:
            r = pub_teacher[(teacher, student)]
            tline += f" (published {r['top1']:.2f}, {r['source']})"
        lines += [head, "", tline + ".", ""]
        ranked = "last-epoch top-1" if metric == "top1" else "top-1 at best-val epoch"
        cols = ["rank", "method", "access", ranked + " (ranked)"]
        if metric == "top1_at_best_val":
            cols.append("last-epoch top-1")
        if has_val:
            cols.append("top-1 at best-val epoch")
        if has_pub:
            cols.append("best test epoch (papers' protocol, optimistic)")
        cols += ["Δ vs CE [simultaneous 95%]", "vs CE", "Δ vs KD [simultaneous 95%]", "seeds"]
        if has_pub:
            cols.append("published")
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, row in g.sort_values(["rank", "label"], na_position="last").iterrows():
            cells = [str(row.rank_shown), f"`{row.label}`", row.access, _pm(row["mean"], row["std"])]
            if metric == "top1_at_best_val":
                cells.append(_pm(row.top1_mean, row.top1_std))
            if has_val:
                cells.append(_pm(row.top1_at_best_val_mean, row.top1_at_best_val_std))
            if has_pub:
                cells.append(_pm(row.best_top1_mean, row.best_top1_std))
            cells += [_delta(row, "ce"), str(row.vs_ce), _delta(row, "kd"), _seeds(row)]
            if has_pub:
                cells.append(_f(row.published_top1))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    sources = sorted({r["source"] for r in plan.reference})
    if sources:
        lines += ["Published numbers: " + "; ".join(sources) + ". They report the best test epoch, so kdzoo's "
                  "column of that protocol stands beside them for comparison; kdzoo's own rows are ranked on "
                  f"{METRIC_NAMES[metric]}.", ""]
    bad = df[~df.status.isin(["finished"])].drop_duplicates("config_hash")
    if len(bad):
        lines += ["## Runs that did not finish", "", "| status | run | seed | message | hash |", "|---|---|---|---|---|"]
        for _, r in bad.iterrows():
            what = (f"teacher `{r.teacher}`" if r.role == TEACHER_ROLE
                    else f"{r.teacher_model} → {r.student} `{r.label}` ({r.access})")
            lines.append(f"| {r.status} | {what} | {r.seed} | {r.message or ''} | `{r.config_hash}` |")
        lines.append("")
    prov = df[df.kdzoo_version.fillna("").astype(str) != ""]
    if len(prov):
        fmt = lambda col: ", ".join(sorted({str(v) for v in prov[col].fillna("") if str(v)}))  # noqa: E731
        line = (f"Provenance: kdzoo {fmt('kdzoo_version')}, commit {fmt('git_commit')}, torch "
                f"{fmt('torch_version')}" + (f" (build {fmt('torch_build')})" if fmt("torch_build") else "")
                + f", device {fmt('device')}" + (f" (cuDNN {fmt('cudnn_version')})" if fmt("cudnn_version") else "")
                + f", CPU {' '.join(x for x in (fmt('cpu_vendor'), fmt('cpu_model')) if x) or 'not recorded'}"
                + f", CPU capability {fmt('cpu_capability') or 'not recorded'}"
                + f", oneDNN ISA {fmt('onednn_isa') or 'not recorded'}"
                + f", MKL code path {fmt('mkl_isa') or 'not recorded'}"
                + (f", kernel settings {fmt('kernel_env')}" if fmt("kernel_env") else "")
                + f", threads per run {fmt('threads') or 'not recorded'}.")
        lines += [line + " A rerun can repeat these numbers bit for bit only where all of these are the same; "
                  "elsewhere it is a new sample: check it with `kdzoo compare`.", ""]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["markdown"]
