"""What ``report.html`` reads, and what each column it shows means: the one place to point the report at.

The report computes no statistic of its own. Every number in it is read from the files the
leaderboards are (``kdzoo bench`` and ``kdzoo leaderboard`` write them; ``results/<name>/``
commits them):

    plan.json              recipe name, description, dataset, ranked metric, published numbers
    summary.csv            one row per (pair, method label, access): the leaderboard tables
    leaderboard.csv        one row per run: the runs table and the provenance block
    curves.csv             one row per (run, epoch): the learning curves
    b2kd_queries.csv       black-box studies: top-1 against teacher queries (when present)
    tuning*.png, tune*.csv, tuning/* ...  a tuned recipe's figures and tables (TUNING_*; when present)
    PROVENANCE.md          command, commit, device and date, shown as written (when present)

and, when a committed reference exists for the recipe (``results/<name>/``, as at the end of
``kdzoo bench``), ``kdzoo compare``'s own table of this folder against it.

Columns: ``LEADERBOARD`` lists the summary.csv columns a leaderboard table shows, in order,
each with the CSV columns it is drawn from and how (``kind``); a column whose sources are
missing from the CSV is left out, so a new statistics column appears by adding one line here.
A summary.csv column that no entry uses and ``SHOWN_ELSEWHERE`` does not name is shown anyway,
after the known ones, under its CSV name (text, or numbers with two decimals): nothing the
leaderboard files gain is hidden. ``RUNS`` does the same for leaderboard.csv.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..bench.execution.store import PLAN
from ..bench.report import compare
from ..bench.report.curves import CURVES_CSV
from ..bench.report.leaderboard import CSV, SUMMARY
from ..errors import ConfigError
from ..teachers import ACCESS_ORDER

PROVENANCE = "PROVENANCE.md"
QUERIES_CSV = "b2kd_queries.csv"   # written by benchmarks/b2kd_queries.py
TUNING_FIGURES = ("tuning*.png", "tune*.png", "tuning/*.png", "tune/*.png")
TUNING_TABLES = ("tuning*.csv", "tune*.csv", "tuning/*.csv", "tune/*.csv")
PAIR = ("teacher", "student")               # a leaderboard table per distinct pair


@dataclass(frozen=True)
class Column:
    """One column of a table: ``header`` shown, drawn from the CSV columns ``sources`` as ``kind``:

    text       the value as written             number    sources[0] with ``digits`` decimals
    mean_std   "mean ± std" (sources: mean, std)  interval  "Δ [low, high] (n=…)" (Δ, low, high[, n])
    rank       the first non-empty source         count     "a/b[, c]" (sources: a, b[, c])
    list       "; "-separated names                verdict   a word, coloured by its meaning

    A cell sorts on the number of its first source (text columns alphabetically). ``shown_if``: a CSV
    column; the column is shown only when some row has a value there (columns some recipes fill)."""
    header: str
    kind: str
    sources: tuple[str, ...]
    note: str = ""
    digits: int = 2
    shown_if: str = ""


STATS = "docs/statistics.md"
LEADERBOARD: tuple[Column, ...] = (
    Column("rank", "rank", ("rank_shown", "rank"),
           "the ranks the data allow (1 = best), from the simultaneous intervals: one number where the method is "
           f"separated from every other one; none without a verdict ({STATS})"),
    Column("method", "text", ("label",)),
    Column("access", "text", ("access",), f"teacher access: {' > '.join(ACCESS_ORDER)}"),
    Column("last-epoch top-1", "mean_std", ("top1_mean", "top1_std"), "test top-1 (%) after the last epoch, "
           "mean ± std over the seeds kept (collapsed seeds are listed under seeds, not averaged)"),
    Column("top-1 at best-val epoch", "mean_std", ("top1_at_best_val_mean", "top1_at_best_val_std"),
           "test top-1 (%) at the epoch with the best validation top-1 (chosen without the test split), "
           "mean ± std over the seeds kept", shown_if="top1_at_best_val_mean"),
    Column("best test epoch (papers' protocol)", "mean_std", ("best_top1_mean", "best_top1_std"),
           "test top-1 (%) at the best epoch on the test split, as the papers report: optimistic, shown beside "
           "the published numbers only", shown_if="published_top1"),
    Column("Δ vs CE [95% CI]", "interval", ("delta_ce", "delta_ce_low", "delta_ce_high", "delta_ce_n"),
           "seed-adjusted difference to the student alone with its simultaneous 95% interval: the intervals of a "
           f"pair's table hold all at once; n: seeds kept ({STATS})"),
    Column("vs CE", "verdict", ("vs_ce",), "better / worse when the simultaneous interval to CE excludes 0, "
           "else tied; collapsed (most seeds collapsed) and too few (under 2 seeds left) get no verdict"),
    Column("Δ vs KD [95% CI]", "interval", ("delta_kd", "delta_kd_low", "delta_kd_high", "delta_kd_n"),
           "seed-adjusted difference to KD at the same teacher access, from the same family of intervals"),
    Column("vs KD", "verdict", ("vs_kd",), "better / worse / tied with KD, read off the same intervals"),
    Column("tied with", "list", ("tied_with",), "methods whose simultaneous interval to this one contains 0"),
    Column("seeds", "count", ("n_kept", "n_seeds", "collapsed"), "seeds in the statistics / planned seeds; "
           "collapsed seeds (diverged, or at most chance + 15% of the way to 100%) with their values"),
    Column("finished", "count", ("n_finished", "n_seeds"), "finished seeds / planned seeds"),
    Column("published", "number", ("published_top1",), "the number the recipe quotes from a paper",
           shown_if="published_top1"),
    Column("teacher queries", "number", ("teacher_queries",), "images sent to the teacher per run (mean)", 0),
    Column("train s", "number", ("train_seconds",), "training seconds per run (mean)", 1),
)
# summary.csv columns no Column shows because the page shows them elsewhere (the pair's heading, the
# page's heading, the ranked metric's header) or because they repeat a shown one: ``mean``/``std`` are the
# ranked metric's columns; the rank column shows ``rank_shown``, the rank interval ("3–9") that ``rank_low``
# and ``rank_high`` bound, and sorts on ``rank``; ``outcome`` and ``n_collapsed`` are what the verdicts and
# the seeds column say; ``mean_all``/``std_all`` (every finished seed, collapsed ones included) follow from
# the kept seeds' numbers and the collapsed values the seeds column lists
SHOWN_ELSEWHERE = frozenset({"recipe", "dataset", "teacher", "student", "method", "metric", "mean", "std",
                             "teacher_top1", "published_source", "statuses", "top5_mean", "outcome", "mean_all",
                             "std_all", "n_collapsed", "rank_low", "rank_high"})

RUNS: tuple[Column, ...] = (
    Column("role", "text", ("role",)),
    Column("teacher", "text", ("teacher_model",)),
    Column("student", "text", ("student",)),
    Column("method", "text", ("label",)),
    Column("access", "text", ("access",)),
    Column("seed", "number", ("seed",), digits=0),
    Column("status", "verdict", ("status",)),
    Column("top-1", "number", ("top1",), "test top-1 (%) after the last epoch"),
    Column("best top-1", "number", ("best_top1",)),
    Column("best epoch", "number", ("best_epoch",), digits=0),
    Column("val top-1", "number", ("val_top1",)),
    Column("epochs", "count", ("epochs_done", "epochs")),
    Column("teacher queries", "number", ("teacher_queries",), digits=0),
    Column("images/s", "number", ("images_per_second",), digits=0),
    Column("train s", "number", ("train_seconds",), digits=1),
    Column("run hash", "text", ("config_hash",)),
    Column("message", "text", ("message",)),
)
# run-level provenance, shown once in the provenance block (distinct values)
PROVENANCE_COLUMNS = ("kdzoo_version", "git_commit", "torch_version", "torch_build", "device", "cpu_capability",
                      "threads")
RUNS_SHOWN_ELSEWHERE = frozenset({"recipe", "dataset", "teacher", "method", "top5", "teacher_top1",
                                  "prepare_queries", "student_params", "loss_args", *PROVENANCE_COLUMNS})

# curves.csv: a line per (pair, label, access), the mean over seeds per epoch, a band min..max over seeds
CURVE_GROUP, CURVE_X, CURVE_Y, CURVE_LOSS = ("label", "access"), "epoch", "test_top1", "train_loss"
# b2kd_queries.csv: top-1 against teacher queries per method label (the 'queries' study's finished runs)
QUERY_X, QUERY_Y, QUERY_GROUP, QUERY_STUDY = "teacher_queries", "top1", ("label", "access"), "queries"


def columns(table: tuple[Column, ...], df: pd.DataFrame, elsewhere: frozenset[str]) -> list[Column]:
    """The known columns whose sources ``df`` has, then every other column of ``df`` shown generically."""
    def present(c: Column) -> bool:
        if c.kind == "rank":   # its sources are alternatives: the first non-empty one is shown
            return any(s in df.columns for s in c.sources)
        return c.sources[0] in df.columns and all(s in df.columns for s in c.sources[1:3 if c.kind == "interval"
                                                                                      else None])

    known = [c for c in table if present(c)
             and (not c.shown_if or (c.shown_if in df.columns and df[c.shown_if].notna().any()))]
    used = {s for c in table for s in c.sources} | elsewhere
    extra = [Column(name, "number" if pd.api.types.is_numeric_dtype(df[name]) else "text", (name,))
             for name in df.columns if name not in used]
    return known + extra


@dataclass
class Sources:
    """Everything a report shows, read from one output folder."""
    folder: Path
    plan: dict[str, Any]
    summary: pd.DataFrame
    runs: pd.DataFrame
    curves: pd.DataFrame | None = None
    queries: pd.DataFrame | None = None
    provenance_md: str = ""
    tuning_figures: list[Path] = field(default_factory=list)
    tuning_tables: list[Path] = field(default_factory=list)
    reference: dict[str, Any] | None = None   # {"path", "header", "rows", "line"} or {"path", "error"}

    @property
    def name(self) -> str:
        return str(self.plan.get("recipe") or self.folder.name)

    @property
    def metric(self) -> str:
        """The metric the tables rank: summary.csv's (a plan's test-selected ``best_top1`` is ranked on the last
        epoch), else the plan's."""
        ranked = self.summary["metric"].dropna() if "metric" in self.summary else ()
        return str(ranked.iloc[0]) if len(ranked) else str(self.plan.get("metric") or "top1")

    def pairs(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys(zip(self.summary.teacher, self.summary.student))) if len(self.summary) else []


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path, keep_default_na=True)
    except pd.errors.EmptyDataError:   # a sweep with no finished run writes an empty summary
        return pd.DataFrame()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read as CSV ({type(exc).__name__}); rebuild it with "
                          f"'kdzoo leaderboard {path.parent}'") from None


def _globs(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    return sorted(dict.fromkeys(p for pattern in patterns for p in folder.glob(pattern) if p.is_file()))


def read(folder: str | Path, reference: str | Path | None = None) -> Sources:
    """Read an output folder; ``reference``: a folder or leaderboard.csv to compare with (``kdzoo compare``)."""
    folder = Path(folder)
    try:
        plan = json.loads((folder / PLAN).read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{folder} holds no readable {PLAN}: not a kdzoo bench output folder "
                          f"(run 'kdzoo bench RECIPE.yaml --out {folder}' first)") from None
    summary, runs = _csv(folder / SUMMARY), _csv(folder / CSV)
    if summary is None or runs is None:
        raise ConfigError(f"{folder} has no {SUMMARY} or {CSV}; write them with 'kdzoo leaderboard {folder}'")
    queries = _csv(folder / QUERIES_CSV)
    if queries is not None and not {QUERY_X, QUERY_Y, *QUERY_GROUP} <= set(queries.columns):
        queries = None   # a file of another shape: not drawn rather than drawn wrong
    prov = folder / PROVENANCE
    src = Sources(folder=folder, plan=plan if isinstance(plan, dict) else {}, summary=summary, runs=runs,
                  curves=_csv(folder / CURVES_CSV), queries=queries,
                  provenance_md=prov.read_text(errors="replace") if prov.is_file() else "",
                  tuning_figures=_globs(folder, TUNING_FIGURES), tuning_tables=_globs(folder, TUNING_TABLES))
    if reference is not None:
        src.reference = compare_with(Path(reference), folder)
    return src


def default_reference(folder: str | Path, name: str) -> Path | None:
    """``results/<name>/`` (relative to the working folder, as ``kdzoo bench`` looks for it), unless that is
    ``folder`` itself or holds no leaderboard."""
    ref = Path("results") / name
    if not (ref / CSV).is_file() or ref.resolve() == Path(folder).resolve():
        return None
    return ref


def compare_with(reference: Path, folder: Path) -> dict[str, Any]:
    """``kdzoo compare REFERENCE FOLDER`` as it prints it: its header, rows and summary line."""
    try:
        rows, metric = compare.compare_paths(reference, folder)
    except ConfigError as exc:
        return {"path": str(reference), "error": str(exc)}
    return {"path": str(reference), "metric": metric, "header": list(compare.HEADER),
            "rows": compare.table_rows(rows), "verdicts": [r.verdict for r in rows],
            "line": compare.summary_line(rows, compare.DEFAULT_TOLERANCE, compare.DEFAULT_ALPHA)}


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


__all__ = ["Column", "LEADERBOARD", "RUNS", "Sources", "columns", "default_reference", "read"]
