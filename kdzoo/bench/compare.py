"""``kdzoo compare REFERENCE NEW``: is a rerun of a benchmark the same result as a committed reference?

A rerun on another machine is a new sample, not a copy: floating-point kernels
differ between CPUs and GPUs, so the same seed gives other weights. So two
leaderboards are compared as two samples per (pair, method, access):

- the difference of means NEW - REFERENCE with a 95% Welch interval
  (unequal variances, Welch-Satterthwaite degrees of freedom; the seeds of the
  two sides are not paired, since the same seed on another machine is another run);
- ``reproduced``: the whole 95% interval lies inside +-tolerance (an equivalence
  test: two one-sided tests at 2.5% each). This is checked first: a difference
  shown to be smaller than the tolerance is no difference that matters, even
  when many seeds make it significant. The default tolerance, 1 point of
  top-1, is about the seed-to-seed standard deviation of the shipped CPU
  benchmarks (0.1-1.2 points) and below the smallest gain over CE their README
  discusses (1.5 points): a change inside it would not change a conclusion.
  A comparison too small to bound the difference that tightly never says it;
- ``differs``: otherwise, when Welch's two-sided test rejects "same mean" after
  Holm's step-down correction over all tested rows (family-wise error <= alpha,
  5% by default), so a self-comparison of a 10-row leaderboard flags something
  in at most 5% of trials, not in 40%;
- ``consistent`` otherwise: no evidence of a difference, but not enough to
  show there is none. It comes with the smallest difference this comparison
  would detect (80% power at Holm's strictest level) and the seeds per side
  that would make it conclusive, estimated from the observed spread;
- ``too few``: fewer than 2 finished seeds on a side (no spread to test against);
- ``reference only`` / ``new only``: the row is on one side only (not tested).

Pure functions over pandas; the t distribution comes from ``stats`` (no scipy).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from .recipe_types import name_problem
from .stats import t_ppf, t_sf2

KEYS = ["teacher", "student", "label", "access"]
ONLY_REF, ONLY_NEW = "reference only", "new only"   # verdicts of rows present on one side
ONE_SIDED = (ONLY_REF, ONLY_NEW)
DEFAULT_TOLERANCE = 1.0
DEFAULT_ALPHA = 0.05
POWER = 0.8
MAX_SEEDS = 10_000


@dataclass
class Sample:
    mean: float
    std: float
    n: int


@dataclass
class Row:
    teacher: str
    student: str
    label: str
    access: str
    ref: Sample
    new: Sample
    diff: float = math.nan
    low: float = math.nan
    high: float = math.nan
    df: float = math.nan
    p: float = math.nan
    verdict: str = ""
    detectable: float = math.nan     # smallest |difference| this comparison detects (80% power)
    seeds_needed: int | None = None  # seeds per side that would make a 'consistent' row conclusive
    identical: bool = False          # the same seeds with the same values on both sides (a bit-identical rerun)
    other_settings: bool = False     # no run hash in common: the two sides ran different configurations


# ------------------------------------------------------------------ input
def load_runs(path: str | Path, metric: str | None = None,
              notes: list[str] | None = None) -> tuple[pd.DataFrame, str]:
    """Finished student runs of a bench output folder or a ``leaderboard.csv``, and the metric to compare.

    Bad input is refused in one line naming the CSV line: no finished student run, a name that
    would break the table, a value that is not a finite number, one seed given twice with two
    values. Exact copies of a row count once (a note is added to ``notes``)."""
    p = Path(path)
    csv = p / "leaderboard.csv" if p.is_dir() else p
    if not csv.is_file():
        where = f"{p} holds no leaderboard.csv" if p.is_dir() else f"no such file or folder: {p}"
        raise ConfigError(f"{where}; give a kdzoo bench output folder or its leaderboard.csv")
    try:
        df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{csv} cannot be read as a leaderboard ({type(exc).__name__})") from exc
    missing = [c for c in KEYS + ["status", "role"] if c not in df.columns]
    if missing:
        raise ConfigError(f"{csv} is not a kdzoo leaderboard.csv (no column {', '.join(missing)})")
    if metric is None:
        metric = _plan_metric(csv.parent) or "top1"
    if metric not in df.columns:
        raise ConfigError(f"{csv} has no column {metric!r} (try --metric top1)")
    df["line"] = df.index + 2            # the CSV's own line numbers (line 1 is the header), for messages
    df = df[(df.role == "student") & (df.status == "finished")].copy()
    if df.empty:
        raise ConfigError(f"{csv} holds no finished student run: nothing to compare")
    for k in KEYS:
        df[k] = df[k].astype(str)
    _check_rows(df, csv, metric)
    return _collapse_duplicates(df, csv, metric, notes), metric


def _who(row: pd.Series) -> str:
    seed = f" seed {row['seed']}" if "seed" in row.index else ""
    return f"{row['teacher']}→{row['student']} {row['label']} ({row['access']}){seed}"


def _check_rows(df: pd.DataFrame, csv: Path, metric: str) -> None:
    """Names and values a comparison can trust, or one line naming the first row that is not."""
    for _, row in df.iterrows():
        for k in KEYS:
            if name_problem(row[k]):
                raise ConfigError(f"{csv} line {row['line']}: {k} {row[k]!r} {name_problem(row[k])}")
        raw = row[metric]
        if pd.isna(raw):
            raise ConfigError(f"{csv} line {row['line']}: {metric} of {_who(row)} is empty")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{csv} line {row['line']}: {metric} '{raw}' of {_who(row)} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"{csv} line {row['line']}: {metric} '{raw}' of {_who(row)} is not a finite number")
    df[metric] = pd.to_numeric(df[metric])


def _collapse_duplicates(df: pd.DataFrame, csv: Path, metric: str, notes: list[str] | None) -> pd.DataFrame:
    """A (pair, method, access, seed) counts once: copies of one row are collapsed (with a note), rows that
    disagree are refused. Counted twice they would be extra seeds and shrink every interval."""
    if "seed" not in df.columns:
        return df
    key = KEYS + ["seed"]
    dup = df[df.duplicated(key, keep=False)]
    if dup.empty:
        return df
    for _, g in dup.groupby(key, sort=False):
        if g[metric].nunique() > 1:
            lines = ", ".join(str(n) for n in g["line"])
            values = ", ".join(f"{v:g}" for v in g[metric])
            raise ConfigError(f"{csv} lines {lines}: {_who(g.iloc[0])} appears {len(g)} times with different "
                              f"{metric} ({values}); keep one row per seed")
    extra = int(df.duplicated(key).sum())
    if notes is not None:
        notes.append(f"{csv}: {extra} duplicate row{'s' if extra > 1 else ''} (same pair, method, access and seed) "
                     f"counted once")
    return df.drop_duplicates(key)


def _plan_metric(folder: Path) -> str | None:
    try:
        return json.loads((folder / "plan.json").read_text()).get("metric")
    except (OSError, ValueError, AttributeError):
        return None


# ------------------------------------------------------------------ tests
def sample(values: list[float]) -> Sample:
    v = [float(x) for x in values if x == x]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else math.nan
    return Sample(mean, std, n)


def welch(ref: Sample, new: Sample) -> tuple[float, float, float]:
    """(new - ref, its standard error, Welch-Satterthwaite degrees of freedom)."""
    a, b = ref.std ** 2 / ref.n, new.std ** 2 / new.n
    se = math.sqrt(a + b)
    if se == 0:
        return new.mean - ref.mean, 0.0, float(ref.n + new.n - 2)
    df = (a + b) ** 2 / (a * a / (ref.n - 1) + b * b / (new.n - 1))
    return new.mean - ref.mean, se, df


def holm(pvalues: list[float], alpha: float) -> list[bool]:
    """Holm's step-down rejections: the k-th smallest p is tested at alpha / (m - k + 1), stopping at the first kept."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    reject = [False] * len(pvalues)
    m = len(pvalues)
    for k, i in enumerate(order):
        if pvalues[i] <= alpha / (m - k):
            reject[i] = True
        else:
            break
    return reject


def detectable(se: float, df: float, alpha: float, m: int) -> float:
    """Difference detected with 80% power by a two-sided test at level alpha/m (Holm's strictest step)."""
    if se == 0:
        return 0.0
    return (t_ppf(1 - alpha / (2 * m), df) + t_ppf(POWER, df)) * se


def seeds_for_verdict(diff: float, sd: float, tolerance: float, alpha: float, m: int, start: int = 3) -> int | None:
    """Seeds per side (at least ``start``, one more than now) at which the observed difference and spread
    would give 'differs' or 'reproduced'; None beyond MAX_SEEDS.

    Both conditions only get easier with more seeds, so each is found by a doubling then a bisection."""
    if sd == 0:
        return start

    def se_df(n: int) -> tuple[float, float]:
        return sd * math.sqrt(2.0 / n), 2.0 * n - 2

    def differs(n: int) -> bool:
        return detectable(*se_df(n), alpha, m) <= abs(diff)

    def reproduced(n: int) -> bool:
        se, df = se_df(n)
        return abs(diff) + t_ppf(0.975, df) * se <= tolerance

    best = None
    for ok in (differs, reproduced):
        lo, hi = start - 1, start   # ok(lo) is taken as False: lo is at most the seeds there are now
        while hi <= MAX_SEEDS and not ok(hi):
            lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            continue
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if ok(mid):
                hi = mid
            else:
                lo = mid
        best = hi if best is None else min(best, hi)
    return best


def compare(ref: pd.DataFrame, new: pd.DataFrame, metric: str = "top1", tolerance: float = DEFAULT_TOLERANCE,
            alpha: float = DEFAULT_ALPHA) -> list[Row]:
    """One row per (pair, label, access) present on either side, with its verdict; a row present on one
    side only says so (``ONLY_REF``, ``ONLY_NEW``) and is not tested. Two sides with no row in common
    are refused (ConfigError): they are not a benchmark and its rerun."""
    if not tolerance > 0:
        raise ConfigError(f"--tolerance must be > 0, got {tolerance}")
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}")
    ref_keys, new_keys = ([tuple(k) for k in df[KEYS].values.tolist()] for df in (ref, new))
    if not set(ref_keys) & set(new_keys):
        raise ConfigError(f"the two leaderboards share no row (pair, method, access): the reference has "
                          f"{_rows_named(ref_keys)}, the new one {_rows_named(new_keys)}; compare a rerun with "
                          f"its own reference")
    keys = list(dict.fromkeys(ref_keys + new_keys))
    ref_groups, new_groups = (dict(iter(df.groupby(KEYS, sort=False))) for df in (ref, new))
    rows = []
    for key in keys:
        a, b = ref_groups.get(key), new_groups.get(key)
        r = Row(*key, ref=sample([] if a is None else a[metric].tolist()),
                new=sample([] if b is None else b[metric].tolist()))
        if a is not None and b is not None:
            if "seed" in a.columns and "seed" in b.columns:
                # the statistics cannot tell a bit-identical rerun from a lucky one; the note says which it was
                r.identical = dict(zip(a.seed.astype(int), a[metric])) == dict(zip(b.seed.astype(int), b[metric]))
            if "config_hash" in a.columns and "config_hash" in b.columns:
                # a run's hash covers every setting but the code, so a row with no hash in common compares two
                # different experiments (a changed recipe), not a rerun: the verdict alone would not say so
                r.other_settings = not set(a.config_hash.astype(str)) & set(b.config_hash.astype(str))
        else:
            r.verdict = ONLY_NEW if a is None else ONLY_REF
        rows.append(r)
    judge([r for r in rows if r.verdict not in ONE_SIDED], tolerance, alpha)
    return rows


def _rows_named(keys: list[tuple]) -> str:
    first = list(dict.fromkeys(keys))
    shown = ", ".join(f"{t}→{s} {label}" for t, s, label, _ in first[:2])
    return shown + (f" and {len(first) - 2} more" if len(first) > 2 else "")


def judge(rows: list[Row], tolerance: float = DEFAULT_TOLERANCE, alpha: float = DEFAULT_ALPHA,
          advise: bool = True) -> list[Row]:
    """Fill in each row's interval, p-value and verdict (the rows' samples are set); returns the rows.

    ``advise``: also estimate, for 'consistent' rows, the seeds that would settle them."""
    tested = [r for r in rows if r.ref.n >= 2 and r.new.n >= 2]
    tested_ids = {id(r) for r in tested}
    for r in rows:
        if id(r) not in tested_ids:
            r.diff = r.new.mean - r.ref.mean
            r.verdict = "too few"
    m = max(len(tested), 1)
    for r in tested:
        r.diff, se, r.df = welch(r.ref, r.new)
        half = t_ppf(0.975, r.df) * se
        r.low, r.high = r.diff - half, r.diff + half
        r.p = (1.0 if r.diff == 0 else 0.0) if se == 0 else t_sf2(r.diff / se, r.df)
        r.detectable = detectable(se, r.df, alpha, m)
    for r, rejected in zip(tested, holm([r.p for r in tested], alpha)):
        if -tolerance <= r.low and r.high <= tolerance:
            r.verdict = "reproduced"   # shown smaller than the tolerance, even where significant
        elif rejected:
            r.verdict = "differs"
        else:
            r.verdict = "consistent"
            if not advise:
                continue
            sd = math.sqrt((r.ref.std ** 2 + r.new.std ** 2) / 2)
            r.seeds_needed = seeds_for_verdict(r.diff, sd, tolerance, alpha, m, max(r.ref.n, r.new.n) + 1)
    return rows


def compare_paths(reference: str | Path, new: str | Path, metric: str | None = None,
                  tolerance: float = DEFAULT_TOLERANCE, alpha: float = DEFAULT_ALPHA,
                  notes: list[str] | None = None) -> tuple[list[Row], str]:
    ref_df, metric = load_runs(reference, metric, notes)
    new_df, _ = load_runs(new, metric, notes)
    return compare(ref_df, new_df, metric, tolerance, alpha), metric


# ----------------------------------------------------------------- output
def _ms(s: Sample) -> str:
    if s.n == 0:
        return "—"
    return f"{s.mean:.2f}" + (f" ± {s.std:.2f}" if s.n > 1 else "") + f" (n={s.n})"


def note(r: Row) -> str:
    return (("other settings than the reference (no run hash in common); " if r.other_settings else "")
            + ("identical, seed by seed; " if r.identical else "") + _verdict_note(r))


def _verdict_note(r: Row) -> str:
    if r.verdict == "consistent":
        more = f"{r.seeds_needed} seeds per side" if r.seeds_needed else f"more than {MAX_SEEDS} seeds per side"
        return f"detects ≥ {r.detectable:.2f}; conclusive with ≈ {more}"
    if r.verdict == "too few":
        return "needs ≥ 2 finished seeds on each side"
    if r.verdict in ONE_SIDED:
        return "absent from the new run" if r.verdict == ONLY_REF else "absent from the reference"
    return f"p = {r.p:.2g}" if r.verdict == "differs" else ""


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        ci = f"{r.diff:+.2f} [{r.low:+.2f}, {r.high:+.2f}]" if r.low == r.low else (
            "—" if r.diff != r.diff else f"{r.diff:+.2f}")
        out.append([f"{r.teacher}→{r.student}", r.label, r.access, _ms(r.ref), _ms(r.new), ci, r.verdict, note(r)])
    return out


HEADER = ["pair", "method", "access", "reference", "new", "Δ new − ref [95% CI]", "verdict", "note"]


def summary_line(rows: list[Row], tolerance: float, alpha: float) -> str:
    counts = {v: sum(r.verdict == v for r in rows) for v in ("differs", "reproduced", "consistent", "too few")}
    parts = [f"{counts['differs']} differ", f"{counts['reproduced']} reproduced", f"{counts['consistent']} consistent"]
    if counts["too few"]:
        parts.append(f"{counts['too few']} with too few seeds")
    for verdict, where in ((ONLY_REF, "in the reference only"), (ONLY_NEW, "in the new run only")):
        if any(r.verdict == verdict for r in rows):
            parts.append(f"{sum(r.verdict == verdict for r in rows)} {where}")
    identical = sum(r.identical for r in rows)
    if identical:
        parts.append(f"{identical} identical to the reference seed by seed")
    other = sum(r.other_settings for r in rows)
    if other:
        parts.append(f"{other} run with other settings than the reference (a changed recipe: not a rerun)")
    return (f"{len(rows)} rows: " + ", ".join(parts) + f" (Welch, Holm-corrected α = {alpha:g}; "
            f"reproduced = 95% CI within ±{tolerance:g} points)")


def print_report(rows: list[Row], metric: str, tolerance: float, alpha: float, title: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or f"{metric} (%): reference vs new, mean ± std (n seeds)")
    for col in HEADER:
        table.add_column(col, overflow="fold", no_wrap=col == "pair")
    for cells in table_rows(rows):
        table.add_row(*cells)
    console = Console(width=max(Console().width, 160))
    console.print(table)
    console.print(summary_line(rows, tolerance, alpha))


__all__ = ["DEFAULT_TOLERANCE", "ONE_SIDED", "ONLY_NEW", "ONLY_REF", "Row", "Sample", "compare", "compare_paths",
           "holm", "judge", "load_runs", "print_report", "summary_line", "welch"]
