"""Leaderboards from a run store: ``leaderboard.csv``, ``summary.csv``, ``leaderboard.md`` and a PNG plot.

Everything is rebuilt from ``OUT/plan.json`` (written by ``kdzoo bench``) and
the runs' ``result.json`` files, so ``kdzoo leaderboard OUT`` needs nothing else.

- ``leaderboard.csv``: one row per planned (pair, method, access, seed), plus one
  per teacher trained by the sweep (``role`` teacher). ``top1`` is the test top-1
  after the last epoch, ``best_top1`` the best over epochs (at ``best_epoch``).
  Runs that failed, diverged or have not run yet keep their row, with ``status``
  and ``message``. The student-alone run is shared by the pairs with that student,
  so it appears once per pair.
- ``summary.csv`` / ``leaderboard.md``: per pair, method label and access level:
  mean ± sample std over the finished seeds of the recipe's metric; the paired
  difference to the student alone (``ce``) and to ``kd`` at the same access
  (mean over the seeds where both finished, with a 95% Student-t confidence
  interval, mean ± t(0.975, n-1)·sd/√n); the rank within the pair (1 = best);
  and the recipe's published number where it gives one.
"""
from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.checkpoint import atomic_write_bytes, atomic_write_text
from ..errors import ConfigError
from . import ties
from .store import RunStore
from .sweep import STUDENT_ROLE, TEACHER_ROLE, Plan

CSV, SUMMARY, MARKDOWN, PLOT = "leaderboard.csv", "summary.csv", "leaderboard.md", "leaderboard.png"

# two-sided 95% quantiles of Student's t, t(0.975, df), df = 1..30
T975 = (12.706204736174698, 4.302652729749464, 3.182446305284263, 2.7764451051977934, 2.570581835636314,
        2.446911851144969, 2.3646242515927844, 2.306004135204166, 2.2621571628540993, 2.2281388519649385,
        2.200985160082949, 2.1788128296634177, 2.1603686564610127, 2.1447866879169273, 2.131449545559323,
        2.1199052992210112, 2.1098155778331806, 2.10092204024096, 2.093024054408263, 2.0859634472658364,
        2.079613844727662, 2.0738730679040147, 2.0686576104190406, 2.0638985616280205, 2.059538552753294,
        2.055529438642871, 2.0518305164802833, 2.048407141795244, 2.045229642132703, 2.0422724563012373)
Z975 = 1.959963984540054


def t_quantile_975(df: int) -> float:
    """t(0.975, df): scipy when installed, else the table above (df <= 30) or a Cornish-Fisher expansion."""
    if df < 1:
        return float("nan")
    try:
        from scipy.stats import t  # type: ignore  # optional dependency (the 'test' extra)
        return float(t.ppf(0.975, df))
    except ImportError:
        pass
    if df <= len(T975):
        return T975[df - 1]
    z, v = Z975, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * v ** 4))


def paired_ci(diffs: list[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of paired differences with a 95% t interval; low/high NaN for n < 2."""
    d = [float(x) for x in diffs if x == x]
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = sum(d) / n
    if n < 2:
        return mean, float("nan"), float("nan"), n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_quantile_975(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half, n


# ------------------------------------------------------------------ rows
# what the machine's kernels dispatch to (bench/provenance.py); empty for runs made before it was recorded
MACHINE_COLUMNS = ["cpu_vendor", "cpu_model", "onednn_isa", "mkl_isa", "cudnn_version", "kernel_env"]
COLUMNS = ["recipe", "dataset", "teacher", "student", "method", "label", "access", "seed", "top1", "top5",
           "best_top1", "best_epoch", "val_top1", "teacher_top1", "epochs", "epochs_done", "train_seconds",
           "images_per_second", "teacher_queries", "prepare_queries", "student_params", "status", "message", "role",
           "teacher_model", "loss_args", "config_hash", "kdzoo_version", "git_commit", "torch_version", "device",
           "cpu_capability", "torch_build", "threads", *MACHINE_COLUMNS]
FLOAT_COLUMNS = ["top1", "top5", "best_top1", "val_top1", "teacher_top1", "train_seconds", "images_per_second",
                 "student_params"]
INT_COLUMNS = ["seed", "best_epoch", "epochs", "epochs_done", "teacher_queries", "prepare_queries"]


def load_plan(out: str | Path) -> Plan:
    store = RunStore(out)
    d = store.read_plan()
    again = f"run 'kdzoo bench RECIPE.yaml --out {out}' again to rewrite it"
    if d is None:
        if (store.root / "plan.json").exists():
            raise ConfigError(f"{store.root / 'plan.json'} is truncated or corrupt; {again}")
        raise ConfigError(f"{store.root} holds no plan.json: it is not a kdzoo bench output folder "
                          f"(run 'kdzoo bench RECIPE.yaml --out {out}' first)")
    try:
        return Plan.from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{store.root / 'plan.json'} is not a kdzoo plan ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); {again}") from None


def rows(plan: Plan, store: RunStore) -> pd.DataFrame:
    results = {h: store.result(h) for h in plan.hashes()}
    statuses = {h: (str(r.get("status", "failed")) if r else store.status(h)) for h, r in results.items()}

    teacher_top1: dict[str, float] = {}
    for e in plan.entries:
        r = results.get(e.hash) or {}
        if e.role == TEACHER_ROLE and _finite(r.get("top1")):
            teacher_top1[e.teacher] = float(r["top1"])
    for e in plan.entries:
        r = results.get(e.hash) or {}
        if e.role == STUDENT_ROLE and e.teacher not in teacher_top1 and _finite(r.get("teacher_top1")):
            teacher_top1[e.teacher] = float(r["teacher_top1"])

    out = []
    for e in plan.entries:
        r = results.get(e.hash) or {}
        spec = plan.specs.get(e.hash)
        status = statuses[e.hash]
        message = str(r.get("message", "") or "")
        if not r and e.teacher_hash and statuses.get(e.teacher_hash) in ("failed", "diverged"):
            status, message = "blocked", f"teacher run {e.teacher_hash} {statuses[e.teacher_hash]}"
        out.append({
            "recipe": plan.recipe, "dataset": plan.dataset, "teacher": e.teacher, "student": e.student,
            "method": e.method, "label": e.label, "access": e.access, "seed": e.seed,
            "top1": _num(r.get("top1")), "top5": _num(r.get("top5")), "best_top1": _num(r.get("best_top1")),
            "best_epoch": int(r.get("best_epoch") or 0), "val_top1": _num(r.get("val_top1")),
            "teacher_top1": _num(r.get("top1")) if e.role == TEACHER_ROLE else teacher_top1.get(e.teacher, math.nan),
            "epochs": spec.train.epochs if spec else int(r.get("epochs") or 0),
            "epochs_done": int(r.get("epochs") or 0), "train_seconds": _num(r.get("train_seconds")),
            "images_per_second": _num(r.get("images_per_second")),
            "teacher_queries": int(r.get("teacher_queries") or 0),
            "prepare_queries": int(r.get("prepare_queries") or 0), "student_params": _num(r.get("student_params")),
            "status": status, "message": " ".join(message.split()), "role": e.role,
            "teacher_model": e.teacher_model,
            "loss_args": json.dumps(spec.loss_kwargs, sort_keys=True, default=str) if spec else "",
            "config_hash": e.hash, "kdzoo_version": r.get("kdzoo_version", ""), "git_commit": r.get("git_commit", ""),
            "torch_version": r.get("torch_version", ""), "device": r.get("device", ""),
            # runs made before these were recorded leave them empty, never guessed
            "cpu_capability": r.get("cpu_capability", ""), "torch_build": r.get("torch_build", ""),
            "threads": r.get("threads", ""), **{c: r.get(c, "") for c in MACHINE_COLUMNS},
        })
    df = pd.DataFrame(out, columns=COLUMNS)
    for c in FLOAT_COLUMNS:
        df[c] = df[c].astype("float64")
    for c in INT_COLUMNS:
        df[c] = df[c].astype("int64")
    return df


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# --------------------------------------------------------------- summary
def reference_label(plan: Plan, loss: str) -> str | None:
    """The label that stands for ``loss`` in comparisons: the label equal to it, else its first entry."""
    labels = [e.label for e in plan.entries if e.role == STUDENT_ROLE]
    if loss in labels:
        return loss
    return next((e.label for e in plan.entries if e.role == STUDENT_ROLE and e.method == loss), None)


def summarize(plan: Plan, df: pd.DataFrame) -> pd.DataFrame:
    metric = plan.metric
    students = df[df.role == STUDENT_ROLE]
    ce_label, kd_label = reference_label(plan, "ce"), reference_label(plan, "kd")
    published = {(r["teacher"], r["student"], r["method"], r.get("access")): r for r in plan.reference}
    groups = []
    order = list(dict.fromkeys(zip(students.teacher, students.student, students.label, students.access)))
    for teacher, student, label, access in order:
        g = students[(students.teacher == teacher) & (students.student == student) & (students.label == label)
                     & (students.access == access)]
        ok = g[g.status == "finished"]
        row: dict[str, Any] = {
            "recipe": plan.recipe, "dataset": plan.dataset, "teacher": teacher, "student": student, "label": label,
            "method": g.method.iloc[0], "access": access, "metric": metric, "n_seeds": len(g),
            "n_finished": len(ok), "mean": _mean(ok[metric]), "std": _std(ok[metric]),
            "top1_mean": _mean(ok.top1), "top1_std": _std(ok.top1), "best_top1_mean": _mean(ok.best_top1),
            "best_top1_std": _std(ok.best_top1), "top5_mean": _mean(ok.top5),
            "teacher_top1": _mean(g.teacher_top1), "teacher_queries": _mean(ok.teacher_queries),
            "train_seconds": _mean(ok.train_seconds),
        }
        pair = students[(students.teacher == teacher) & (students.student == student)]
        for name, ref in (("ce", ce_label), ("kd", kd_label)):
            stats = (math.nan, math.nan, math.nan, 0)
            if ref is not None and ref != label:
                base = pair[(pair.label == ref) & (pair.status == "finished")]
                if name == "kd":
                    base = base[base.access == access]
                merged = ok[["seed", metric]].merge(base[["seed", metric]], on="seed", suffixes=("", "_ref"))
                stats = paired_ci(list(merged[metric] - merged[f"{metric}_ref"]))
            row[f"delta_{name}"], row[f"delta_{name}_low"], row[f"delta_{name}_high"], row[f"delta_{name}_n"] = stats
        ref_row = published.get((teacher, student, label, access)) or published.get((teacher, student, label, None))
        row["published_top1"] = ref_row["top1"] if ref_row else math.nan
        row["published_source"] = ref_row["source"] if ref_row else ""
        row["statuses"] = ", ".join(f"{k}:{v}" for k, v in g.status.value_counts().sort_index().items())
        groups.append(row)
    summary = pd.DataFrame(groups)
    if summary.empty:
        return summary
    summary["rank"] = (summary.groupby(["teacher", "student"])["mean"].rank(ascending=False, method="min")
                       .astype("Int64"))
    summary = ties.mark(summary, students, metric, ce_label)
    first = ["recipe", "dataset", "teacher", "student", "label", "method", "access", "rank", "metric", "mean", "std"]
    return summary[first + [c for c in summary.columns if c not in first]]


def _mean(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.mean()) if len(s) else math.nan


def _std(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.std(ddof=1)) if len(s) > 1 else math.nan


# -------------------------------------------------------------- markdown
def _f(x: float, nd: int = 2) -> str:
    return "—" if x != x else f"{x:.{nd}f}"


def _pm(mean: float, std: float) -> str:
    return "—" if mean != mean else _f(mean) + (f" ± {_f(std)}" if std == std else "")


def _delta(row: pd.Series, name: str) -> str:
    mean, low, high, n = (row[f"delta_{name}"], row[f"delta_{name}_low"], row[f"delta_{name}_high"],
                          row[f"delta_{name}_n"])
    if mean != mean:
        return "—"
    ci = f" [{low:+.2f}, {high:+.2f}]" if low == low else ""
    return f"{mean:+.2f}{ci} (n={int(n)})"


def markdown(plan: Plan, df: pd.DataFrame, summary: pd.DataFrame) -> str:
    metric_name = ("test top-1 % after the last epoch" if plan.metric == "top1"
                   else "best test top-1 % over epochs")
    seeds = sorted(df[df.role == STUDENT_ROLE].seed.unique().tolist())
    counts = df.drop_duplicates("config_hash").status.value_counts()
    lines = [f"# Leaderboard: {plan.recipe}", ""]
    if plan.description:
        lines += [plan.description, ""]
    lines += [f"Dataset `{plan.dataset}`; metric: {metric_name}; seeds {', '.join(map(str, seeds))}. "
              "Mean ± std over finished seeds. Δ: paired difference to the student alone (CE) and to KD at the "
              "same teacher access, over the seeds where both finished, with a 95% t confidence interval. "
              "Ties: methods are compared by paired t-tests over seeds with Holm's correction (5% family-wise): "
              "`vs CE` says better/worse only where the test against CE, corrected over the pair's comparisons "
              "with CE, separates them; a rank is shown only for a method separated from every other one, "
              "corrected over all pairs of methods (else `tied`; `tied with` lists the methods it cannot be "
              "told apart from).",
              "", "Runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".", ""]
    teachers = {t: v for t, v in zip(df.teacher, df.teacher_top1) if v == v}
    pub_teacher = {(r["teacher"], r["student"]): r for r in plan.reference if r["method"] == TEACHER_ROLE}
    has_pub = bool(plan.reference) and summary.get("published_top1", pd.Series(dtype=float)).notna().any()
    for (teacher, student), g in (summary.groupby(["teacher", "student"], sort=False) if len(summary) else []):
        tmodel = df[df.teacher == teacher].teacher_model.iloc[0]
        head = f"## {tmodel} → {student}" + (f" (teacher `{teacher}`)" if teacher != tmodel else "")
        tline = f"Teacher top-1: {_f(teachers.get(teacher, math.nan))}"
        if (teacher, student) in pub_teacher:
            r = pub_teacher[(teacher, student)]
            tline += f" (published {r['top1']:.2f}, {r['source']})"
        lines += [head, "", tline + ".", ""]
        last, best, mark = "last-epoch top-1", "best-epoch top-1", " (ranked)"
        cols = ["rank", "method", "access", last + (mark if plan.metric == "top1" else ""),
                best + (mark if plan.metric == "best_top1" else ""), "Δ vs CE [95% CI]", "vs CE",
                "Δ vs KD [95% CI]", "tied with", "finished"]
        if has_pub:
            cols.append("published")
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, row in g.sort_values(["rank", "label"], na_position="last").iterrows():
            rank = str(row.get("rank_shown", "")) or ("—" if pd.isna(row["rank"]) else str(int(row["rank"])))
            epochs = [_pm(row.top1_mean, row.top1_std), _pm(row.best_top1_mean, row.best_top1_std)]
            ranked = 1 if plan.metric == "best_top1" else 0
            if rank == "1":
                epochs[ranked] = f"**{epochs[ranked]}**"
            tied = [x for x in str(row.get("tied_with", "") or "").split("; ") if x]
            tied_cell = ("all others" if len(tied) == len(g) - 1 and len(tied) > 2
                         else ", ".join(f"`{x}`" for x in tied) or "none")
            cells = [rank, f"`{row.label}`", row.access, *epochs, _delta(row, "ce"), str(row.get("vs_ce", "")),
                     _delta(row, "kd"), tied_cell, f"{int(row.n_finished)}/{int(row.n_seeds)}"]
            if has_pub:
                cells.append(_f(row.published_top1))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    sources = sorted({r["source"] for r in plan.reference})
    if sources:
        lines += ["Published numbers: " + "; ".join(sources) + ".", ""]
    bad = df[~df.status.isin(["finished"])].drop_duplicates("config_hash")
    if len(bad):
        lines += ["## Runs that did not finish", "", "| status | run | seed | message | hash |", "|---|---|---|---|---|"]
        for _, r in bad.iterrows():
            what = (f"teacher `{r.teacher}`" if r.role == TEACHER_ROLE
                    else f"{r.teacher_model} → {r.student} `{r.label}` ({r.access})")
            lines.append(f"| {r.status} | {what} | {r.seed} | {r.message or ''} | `{r.config_hash}` |")
        lines.append("")
    prov = df[df.kdzoo_version != ""]
    if len(prov):
        fmt = lambda col: ", ".join(sorted({str(v) for v in prov[col] if v}))  # noqa: E731
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


# ------------------------------------------------------------------ plot
def plot(plan: Plan, df: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """One panel per pair: methods down the side, each seed a dot, mean ± std, CE dashed, published ×."""
    # matplotlib only when a plot is drawn: pyplot costs about 0.5 s of start-up for every bench command
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(dict.fromkeys(zip(summary.teacher, summary.student))) if len(summary) else []
    n = max(len(pairs), 1)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    per_panel = max((len(summary[(summary.teacher == t) & (summary.student == s)]) for t, s in pairs), default=1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 0.9 + 0.42 * per_panel * nrows + 0.6 * nrows),
                             squeeze=False)
    metric = plan.metric
    multi_access = summary.access.nunique() > 2 if len(summary) else False
    ce_label = reference_label(plan, "ce")
    for ax, (teacher, student) in zip(axes.flat, pairs):
        g = summary[(summary.teacher == teacher) & (summary.student == student)].reset_index(drop=True)
        names = [f"{r.label}" + (f" ({r.access})" if multi_access and r.access != "none" else "")
                 for r in g.itertuples()]
        ys = list(range(len(g)))[::-1]
        for y, r in zip(ys, g.itertuples()):
            runs = df[(df.role == STUDENT_ROLE) & (df.teacher == teacher) & (df.student == student)
                      & (df.label == r.label) & (df.access == r.access) & (df.status == "finished")]
            ax.scatter(runs[metric], [y] * len(runs), s=14, color="0.6", zorder=2)
            if r.mean == r.mean:
                ax.errorbar(r.mean, y, xerr=0 if r.std != r.std else r.std, fmt="o", color="C0", capsize=3,
                            zorder=3)
            if r.published_top1 == r.published_top1:
                ax.scatter([r.published_top1], [y], marker="x", s=40, color="C3", zorder=4)
        if ce_label is not None:
            ce = g[g.label == ce_label]["mean"]
            if len(ce) and ce.iloc[0] == ce.iloc[0]:
                ax.axvline(ce.iloc[0], color="0.4", linestyle="--", linewidth=1, zorder=1)
        ax.set_yticks(ys)
        ax.set_yticklabels(names)
        tmodel = df[df.teacher == teacher].teacher_model.iloc[0]
        t1 = df[df.teacher == teacher].teacher_top1.dropna()
        ax.set_title(f"{tmodel} → {student}" + (f"\nteacher {t1.iloc[0]:.2f}" if len(t1) else ""), fontsize=10)
        ax.set_xlabel(f"{metric} (%)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(-0.7, len(g) - 0.3)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", color="C0", linestyle="", label="mean ± std"),
               plt.Line2D([], [], marker="o", color="0.6", linestyle="", markersize=4, label="one seed")]
    if ce_label is not None:
        handles.append(plt.Line2D([], [], color="0.4", linestyle="--", label=f"{ce_label} (student alone)"))
    if len(summary) and summary.published_top1.notna().any():
        handles.append(plt.Line2D([], [], marker="x", color="C3", linestyle="", label="published"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{plan.recipe} ({plan.dataset})", fontsize=11)
    with warnings.catch_warnings():   # very long labels: matplotlib warns and keeps the default layout
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # a unique temporary file per writer: two bench processes may rebuild at once
    fig.savefig(buf, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ---------------------------------------------------------------- build
def check_store(out: str | Path) -> None:
    """Refuse (ConfigError) a folder whose run store holds no ended run: a leaderboard of it would say nothing,
    and rebuilding would overwrite the committed one (results/ holds plan.json but no runs/)."""
    plan = load_plan(out)
    store = RunStore(out)
    if not any((store.run_dir(h) / "result.json").is_file() for h in dict.fromkeys(e.hash for e in plan.entries)):
        what = "has no run store (runs/)" if not store.runs.is_dir() else "has no finished run in runs/"
        raise ConfigError(f"{store.root} {what}; nothing to rebuild (a committed reference keeps its leaderboard; "
                          f"compare a rerun with 'kdzoo compare {out} NEW')")


def build(out: str | Path) -> dict[str, Path]:
    """Write the four outputs into ``out`` from its plan and run store; returns their paths."""
    out = Path(out)
    plan = load_plan(out)
    store = RunStore(out)
    df = rows(plan, store)
    summary = summarize(plan, df)
    paths = {"csv": out / CSV, "summary": out / SUMMARY, "markdown": out / MARKDOWN, "plot": out / PLOT}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    atomic_write_text(paths["markdown"], markdown(plan, df, summary))
    plot(plan, df, summary, paths["plot"])
    from . import curves
    paths.update(curves.write(plan, store, out))
    return paths


__all__ = ["COLUMNS", "build", "check_store", "load_plan", "markdown", "paired_ci", "rows", "summarize",
           "t_quantile_975"]
