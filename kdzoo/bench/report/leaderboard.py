"""Leaderboards from a run store: ``leaderboard.csv``, ``summary.csv``, ``leaderboard.md`` and a PNG plot.

Everything is rebuilt from ``OUT/plan.json`` (written by ``kdzoo bench``) and
the runs' ``result.json`` files, so ``kdzoo leaderboard OUT`` needs nothing else;
``kdzoo leaderboard OUT --from-rows`` rebuilds the last three from ``leaderboard.csv``
alone (a committed reference keeps its per-run rows but not its run store).

- ``leaderboard.csv``: one row per planned (pair, method, access, seed), plus one
  per teacher trained by the sweep (``role`` teacher). ``top1`` is the test top-1
  after the last epoch; ``top1_at_best_val`` the test top-1 at the epoch with the
  best validation top-1 (``best_val_epoch``; only with a validation split);
  ``best_top1`` the best test top-1 over epochs (at ``best_epoch``), an epoch picked
  on the test split: optimistic, shown only beside published numbers that use it,
  never ranked. Runs that failed, diverged or have not run yet keep their row, with
  ``status`` and ``message``. The student-alone run is shared by the pairs with that
  student, so it appears once per pair.
- ``summary.csv`` / ``leaderboard.md``: per pair, method label and access level, the
  statistics of ``kdzoo.stats`` (docs/statistics.md): collapsed seeds counted and
  left out; mean ± std over the other seeds; differences to the student alone
  (``ce``) and to ``kd`` at the same access with simultaneous 95% intervals, and
  the verdicts read off them; rank intervals; the recipe's published number where
  it gives one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...engine.checkpoint import atomic_write_text
from ...errors import ConfigError
from ...engine.runfolder import RESULT
from ..execution.store import PLAN, RunStore
from ..plan import STUDENT_ROLE, TEACHER_ROLE, Plan

CSV, SUMMARY, MARKDOWN, PLOT = "leaderboard.csv", "summary.csv", "leaderboard.md", "leaderboard.png"
METRIC_NAMES = {"top1": "test top-1 % after the last epoch",
                "top1_at_best_val": "test top-1 % at the epoch with the best validation top-1"}


def paired_ci(diffs: list[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of paired differences with a 95% t interval (one comparison); see kdzoo.stats."""
    from ...stats import paired_ci as _paired_ci  # scipy only where statistics are computed
    return _paired_ci(diffs)


# ------------------------------------------------------------------ rows
# what the machine's kernels dispatch to (bench/execution/provenance.py); empty for runs made before it was recorded
MACHINE_COLUMNS = ["cpu_vendor", "cpu_model", "onednn_isa", "mkl_isa", "cudnn_version", "kernel_env"]
COLUMNS = ["recipe", "dataset", "teacher", "student", "method", "label", "access", "seed", "top1", "top5",
           "best_top1", "best_epoch", "val_top1", "teacher_top1", "epochs", "epochs_done", "train_seconds",
           "images_per_second", "teacher_queries", "prepare_queries", "student_params", "status", "message", "role",
           "teacher_model", "loss_args", "config_hash", "kdzoo_version", "git_commit", "torch_version", "device",
           "cpu_capability", "torch_build", "threads", *MACHINE_COLUMNS, "best_val_epoch", "top1_at_best_val",
           "num_classes"]
FLOAT_COLUMNS = ["top1", "top5", "best_top1", "val_top1", "teacher_top1", "train_seconds", "images_per_second",
                 "student_params", "top1_at_best_val", "num_classes"]
INT_COLUMNS = ["seed", "best_epoch", "epochs", "epochs_done", "teacher_queries", "prepare_queries", "best_val_epoch"]


def load_plan(out: str | Path) -> Plan:
    store = RunStore(out)
    d = store.read_plan()
    again = f"run 'kdzoo bench RECIPE.yaml --out {out}' again to rewrite it"
    if d is None:
        if (store.root / PLAN).exists():
            raise ConfigError(f"{store.root / PLAN} is truncated or corrupt; {again}")
        raise ConfigError(f"{store.root} holds no {PLAN}: it is not a kdzoo bench output folder "
                          f"(run 'kdzoo bench RECIPE.yaml --out {out}' first)")
    try:
        return Plan.from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{store.root / PLAN} is not a kdzoo plan ({type(exc).__name__}: "
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
            "best_val_epoch": int(r.get("best_val_epoch") or 0),
            "top1_at_best_val": _num(r.get("top1_at_best_val")), "num_classes": _num(r.get("num_classes")),
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


def ranked_metric(plan: Plan) -> str:
    """The column ranked: the plan's metric, except the test-selected ``best_top1`` of plans written before it was
    refused, which is ranked on the last epoch instead."""
    return "top1" if plan.metric == "best_top1" else plan.metric


def known_classes(df: pd.DataFrame, classes: int | None = None) -> int | None:
    """The number of classes, for the collapse margin: ``classes`` if given, else what the runs recorded."""
    if classes is not None:
        return classes
    recorded = pd.to_numeric(df.get("num_classes", pd.Series(dtype=float)), errors="coerce").dropna()
    return int(recorded.iloc[0]) if len(recorded) else None


def _kd_key(keys: list[tuple[str, str]], methods: dict[tuple[str, str], str], access: str) -> tuple[str, str] | None:
    """The KD reference at ``access``: the row labelled ``kd`` there, else the first ``kd`` method there."""
    at = [k for k in keys if k[1] == access and methods[k] == "kd"]
    return next((k for k in at if k[0] == "kd"), at[0] if at else None)


def summarize(plan: Plan, df: pd.DataFrame, classes: int | None = None) -> pd.DataFrame:
    from ...stats import Family  # scipy only where statistics are computed (bench workers never load it)

    metric = ranked_metric(plan)
    students = df[df.role == STUDENT_ROLE]
    ce_label = reference_label(plan, "ce")
    classes = known_classes(df, classes)
    published = {(r["teacher"], r["student"], r["method"], r.get("access")): r for r in plan.reference}
    groups = []
    for (teacher, student), pair in students.groupby(["teacher", "student"], sort=False):
        keys = list(dict.fromkeys(zip(pair.label, pair.access)))
        methods = dict(zip(zip(pair.label, pair.access), pair.method))
        family = Family(pd.DataFrame({"method": list(zip(pair.label, pair.access)), "seed": pair.seed,
                                      "value": pair[metric], "status": pair.status}), classes=classes)
        table = {r["method"]: r for r in family.table().to_dict("records")}
        ce_key = next((k for k in keys if k[0] == ce_label), None)
        for key in keys:
            label, access = key
            g = pair[(pair.label == label) & (pair.access == access)]
            ok = g[g.status == "finished"]
            kept = ok[ok.seed.isin(family.methods[key].kept)]
            t = table[key]
            row: dict[str, Any] = {
                "recipe": plan.recipe, "dataset": plan.dataset, "teacher": teacher, "student": student, "label": label,
                "method": g.method.iloc[0], "access": access, "metric": metric, "n_seeds": len(g),
                "n_finished": len(ok), "n_kept": t["n_kept"], "n_collapsed": t["n_collapsed"], "collapsed": t["collapsed"],
                "outcome": t["outcome"], "mean": t["mean"], "std": t["std"], "mean_all": _mean(ok[metric]),
                "std_all": _std(ok[metric]), "top1_mean": _mean(kept.top1), "top1_std": _std(kept.top1),
                "best_top1_mean": _mean(kept.best_top1), "best_top1_std": _std(kept.best_top1),
                "top1_at_best_val_mean": _mean(kept.top1_at_best_val), "top1_at_best_val_std": _std(kept.top1_at_best_val),
                "top5_mean": _mean(kept.top5), "teacher_top1": _mean(g.teacher_top1),
                "teacher_queries": _mean(ok.teacher_queries), "train_seconds": _mean(ok.train_seconds),
                "rank": t["rank"], "rank_low": t["rank_low"], "rank_high": t["rank_high"], "rank_shown": t["rank_text"],
                "tied_with": "; ".join(str(k[0]) for k in t["tied_with"]),
            }
            for name, ref in (("ce", ce_key), ("kd", _kd_key(keys, methods, access))):
                c = family.compare(key, ref) if ref is not None and ref != key else None
                tested = c is not None and c.diff == c.diff
                row[f"delta_{name}"], row[f"delta_{name}_low"], row[f"delta_{name}_high"] = (
                    (c.diff, c.low, c.high) if tested else (math.nan,) * 3)
                row[f"delta_{name}_n"] = len(kept) if tested else 0
                row[f"vs_{name}"] = c.verdict if c is not None else "—"
            ref_row = published.get((teacher, student, label, access)) or published.get((teacher, student, label, None))
            row["published_top1"] = ref_row["top1"] if ref_row else math.nan
            row["published_source"] = ref_row["source"] if ref_row else ""
            row["statuses"] = ", ".join(f"{k}:{v}" for k, v in g.status.value_counts().sort_index().items())
            groups.append(row)
    summary = pd.DataFrame(groups)
    if summary.empty:
        return summary
    summary["rank"] = summary["rank"].astype("Int64")
    first = ["recipe", "dataset", "teacher", "student", "label", "method", "access", "rank", "metric", "mean", "std"]
    return summary[first + [c for c in summary.columns if c not in first]]


def _mean(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.mean()) if len(s) else math.nan


def _std(s: pd.Series) -> float:
    s = pd.to_numeric(s, errors="coerce").dropna()
    return float(s.std(ddof=1)) if len(s) > 1 else math.nan


# ---------------------------------------------------------------- build
def check_store(out: str | Path) -> None:
    """Refuse (ConfigError) a folder whose run store holds no ended run: a leaderboard of it would say nothing,
    and rebuilding would overwrite the committed one (results/ holds plan.json but no runs/)."""
    plan = load_plan(out)
    store = RunStore(out)
    if not any((store.run_dir(h) / RESULT).is_file() for h in dict.fromkeys(e.hash for e in plan.entries)):
        what = "has no run store (runs/)" if not store.runs.is_dir() else "has no finished run in runs/"
        raise ConfigError(f"{store.root} {what}; nothing to rebuild (a committed reference keeps its leaderboard: "
                          f"'kdzoo leaderboard {out} --from-rows' rebuilds its tables from leaderboard.csv; compare "
                          f"a rerun with 'kdzoo compare {out} NEW')")


def build(out: str | Path, classes: int | None = None) -> dict[str, Path]:
    """Write the four outputs into ``out`` from its plan and run store; returns their paths."""
    out = Path(out)
    plan = load_plan(out)
    store = RunStore(out)
    df = rows(plan, store)
    paths = {"csv": out / CSV}
    atomic_write_text(paths["csv"], df.to_csv(index=False))
    paths.update(_tables(out, plan, df, classes))
    from . import curves
    paths.update(curves.write(plan, store, out))
    return paths


def read_rows(out: str | Path) -> pd.DataFrame:
    """``OUT/leaderboard.csv`` as ``rows`` builds it (columns it predates are added empty)."""
    path = Path(out) / CSV
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: --from-rows rebuilds the tables from a folder's leaderboard.csv")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={c: str for c in ("git_commit", "threads")})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read ({type(exc).__name__})") from None
    missing = [c for c in ("teacher", "student", "label", "access", "seed", "top1", "status", "role") if c not in df]
    if missing:
        raise ConfigError(f"{path} is not a kdzoo leaderboard.csv (no column {', '.join(missing)})")
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = math.nan if c in FLOAT_COLUMNS else 0 if c in INT_COLUMNS else ""
    for c in FLOAT_COLUMNS:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    for c in [c for c in COLUMNS if c not in FLOAT_COLUMNS + INT_COLUMNS]:   # text: an empty cell is ""
        df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    return df


def build_from_rows(out: str | Path, classes: int | None = None) -> dict[str, Path]:
    """Rebuild ``summary.csv``, ``leaderboard.md`` and ``leaderboard.png`` from ``OUT/plan.json`` and the
    per-run rows of ``OUT/leaderboard.csv``, which is read and never written: the path for a committed
    reference whose run store is not kept."""
    out = Path(out)
    return _tables(out, load_plan(out), read_rows(out), classes)


def _tables(out: Path, plan: Plan, df: pd.DataFrame, classes: int | None) -> dict[str, Path]:
    from .leaderboard_md import markdown   # they read this module's names
    from .leaderboard_plot import plot

    summary = summarize(plan, df, classes)
    paths = {"summary": out / SUMMARY, "markdown": out / MARKDOWN, "plot": out / PLOT}
    atomic_write_text(paths["summary"], summary.to_csv(index=False))
    atomic_write_text(paths["markdown"], markdown(plan, df, summary, classes))
    plot(plan, df, summary, paths["plot"])
    return paths


__all__ = ["COLUMNS", "build", "build_from_rows", "check_store", "load_plan", "paired_ci", "read_rows", "rows",
           "summarize"]
