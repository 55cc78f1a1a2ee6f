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
  would detect with 80% power at Holm's strictest level (the noncentral t of
  Welch's statistic, ``kdzoo.stats.power``), taking the observed spread as the
  true one, and the seeds per side at which a rerun would be conclusive with
  80% probability if the observed difference and spread were the truth;
- ``too few``: fewer than 2 finished seeds on a side (no spread to test against).
- ``reference only`` / ``new only``: the row is on one side only (not tested).

``power_line`` says in one line what the comparison's seeds can and cannot detect.
Pure functions over pandas; the distributions come from ``kdzoo.stats`` (scipy).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ...engine.terminal import print_table, say
from ...errors import ConfigError
from ...stats import POWER, detectable_difference, equivalence_chance, holm, mean_std, t_quantile, t_two_sided_p
from ...stats import welch as _welch
from ...stats import welch_power
from ..execution.provenance import MACHINE_FIELDS, machine_differences
from .compare_runs import KEYS, load_runs

ONLY_REF, ONLY_NEW = "reference only", "new only"   # verdicts of rows present on one side
ONE_SIDED = (ONLY_REF, ONLY_NEW)
DEFAULT_TOLERANCE = 1.0
DEFAULT_ALPHA = 0.05
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
    other_machine: list[str] = field(default_factory=list)   # what differs in the recorded machines ("CPU model")


# ------------------------------------------------------------------ tests
def sample(values: list[float]) -> Sample:
    return Sample(*mean_std(values))


def welch(ref: Sample, new: Sample) -> tuple[float, float, float]:
    """(new - ref, its standard error, Welch-Satterthwaite degrees of freedom)."""
    return _welch(ref.mean, ref.std, ref.n, new.mean, new.std, new.n)


def detectable(ref: Sample, new: Sample, alpha: float, m: int) -> float:
    """Difference detected with 80% power by Welch's two-sided test at level alpha/m (Holm's strictest step),
    the observed spreads taken as the true ones."""
    return detectable_difference(ref.std, ref.n, new.std, new.n, alpha / m, POWER)


def seeds_for_verdict(diff: float, sd: float, tolerance: float, alpha: float, m: int, start: int = 3) -> int | None:
    """Seeds per side (at least ``start``, one more than now) at which a rerun with true difference ``diff`` and
    spread ``sd`` on each side gives 'differs' or 'reproduced' with 80% probability; None beyond MAX_SEEDS.

    Both chances grow with the seeds, so each is found by a doubling then a bisection."""
    if sd == 0:
        return start

    def differs(n: int) -> bool:
        return welch_power(diff, sd, n, sd, n, alpha / m) >= POWER

    def reproduced(n: int) -> bool:
        return equivalence_chance(diff, sd, n, sd, n, tolerance) >= POWER

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
            # a rerun on another machine is a new sample, not a copy: say so, naming what differs
            r.other_machine = machine_differences({k: a[k].tolist() for k in MACHINE_FIELDS if k in a.columns},
                                                  {k: b[k].tolist() for k in MACHINE_FIELDS if k in b.columns})
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

    ``advise``: also estimate, for 'consistent' rows, the difference they could detect and the seeds that
    would settle them."""
    tested = [r for r in rows if r.ref.n >= 2 and r.new.n >= 2]
    tested_ids = {id(r) for r in tested}
    for r in rows:
        if id(r) not in tested_ids:
            r.diff = r.new.mean - r.ref.mean
            r.verdict = "too few"
    m = max(len(tested), 1)
    for r in tested:
        r.diff, se, r.df = welch(r.ref, r.new)
        half = t_quantile(0.975, r.df) * se
        r.low, r.high = r.diff - half, r.diff + half
        r.p = (1.0 if r.diff == 0 else 0.0) if se == 0 else t_two_sided_p(r.diff / se, r.df)
    for r, rejected in zip(tested, holm([r.p for r in tested], alpha)):
        if -tolerance <= r.low and r.high <= tolerance:
            r.verdict = "reproduced"   # shown smaller than the tolerance, even where significant
        elif rejected:
            r.verdict = "differs"
        else:
            r.verdict = "consistent"
            if not advise:
                continue
            r.detectable = detectable(r.ref, r.new, alpha, m)
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
def _ms(s: Sample) -> Any:
    if s.n == 0:
        return "—"
    return (f"{s.mean:.2f}" + (f" ± {s.std:.2f}" if s.n > 1 else ""), f"(n={s.n})")


def note(r: Row) -> str:
    return (("other settings than the reference (no run hash in common); " if r.other_settings else "")
            + (f"other {', '.join(r.other_machine)}; " if r.other_machine else "")
            + ("identical, seed by seed; " if r.identical else "") + _verdict_note(r))


def _verdict_note(r: Row) -> str:
    if r.verdict == "consistent":
        more = f"{r.seeds_needed} seeds per side" if r.seeds_needed else f"more than {MAX_SEEDS} seeds per side"
        # the row's own 95% interval may exclude 0 while Holm's correction over the rows does not reject
        alone = f"p = {r.p:.2g}, not significant over all rows; " if r.low > 0 or r.high < 0 else ""
        if r.detectable != r.detectable:   # judged without advice
            return alone.rstrip("; ")
        return f"{alone}detects ≥ {r.detectable:.2f} (80% power); conclusive with ≈ {more}"
    if r.verdict == "too few":
        return "needs ≥ 2 finished seeds on each side"
    if r.verdict in ONE_SIDED:
        return "absent from the new run" if r.verdict == ONLY_REF else "absent from the reference"
    return f"p = {r.p:.2g}" if r.verdict == "differs" else ""


def _delta(r: Row) -> Any:
    if r.diff != r.diff:
        return "—"
    return (f"{r.diff:+.2f}", f"[{r.low:+.2f}, {r.high:+.2f}]" if r.low == r.low else "")


# The comparison table, one per teacher-student pair: (header, cell of a Row); a cell is its text or
# (value, detail). "note" moves under the table when the terminal is too narrow for it.
COLUMNS: list[tuple[str, Callable[[Row], Any]]] = [
    ("method", lambda r: r.label + ("" if r.access in ("logits", "none") else f" ({r.access})")),
    ("reference", lambda r: _ms(r.ref)),
    ("new", lambda r: _ms(r.new)),
    ("Δ new − ref", _delta),
    ("verdict", lambda r: r.verdict),
    ("note", note),
]
HEADER = ["pair"] + [h for h, _ in COLUMNS]


def table_rows(rows: list[Row]) -> list[list[str]]:
    """Every row as text, its pair first (HEADER's columns)."""
    return [[f"{r.teacher}→{r.student}"] + [" ".join(c) if isinstance(c, tuple) else c
                                           for c in (cell(r) for _, cell in COLUMNS)] for r in rows]


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
    machines = sorted({w for r in rows for w in r.other_machine})
    if machines:
        parts.append(f"{sum(bool(r.other_machine) for r in rows)} ran on another machine than the reference "
                     f"(other {', '.join(machines)}: a new sample, not a copy)")
    return (f"{len(rows)} rows: " + ", ".join(parts) + f" (Welch, Holm-corrected α = {alpha:g}; "
            f"reproduced = 95% CI within ±{tolerance:g} points)")


def power_line(rows: list[Row], tolerance: float, alpha: float) -> str:
    """What the comparison's seeds can and cannot detect, in one line: the shift of one row (among the tested
    rows, Holm's first step) flagged 80% of the time, and how often a shift of the tolerance is (median seeds
    and spread of the tested rows)."""
    tested = [r for r in rows if r.ref.n >= 2 and r.new.n >= 2]
    if not tested:
        return ""
    n = int(statistics.median(min(r.ref.n, r.new.n) for r in tested))
    sd = statistics.median(math.sqrt((r.ref.std ** 2 + r.new.std ** 2) / 2) for r in tested)
    typical, level = Sample(math.nan, sd, n), alpha / len(tested)
    return (f"{n} seeds a side: a {detectable(typical, typical, alpha, len(tested)):.1f}-point shift is flagged 80% "
            f"of the time, a {tolerance:g}-point one {welch_power(tolerance, sd, n, sd, n, level):.0%}")


def print_report(rows: list[Row], metric: str, tolerance: float, alpha: float, title: str = "") -> None:
    """The comparison within the terminal's width: a title, one table per pair, the summary line."""
    say(title or f"{metric} (%): reference vs new, mean ± std (n seeds); Δ with its 95% Welch interval")
    pairs: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        pairs.setdefault((r.teacher, r.student), []).append(r)
    for (teacher, student), group in pairs.items():
        print_table([h for h, _ in COLUMNS], [[cell(r) for _, cell in COLUMNS] for r in group],
                    title=f"{teacher} → {student}", spill=("note",))
    say(summary_line(rows, tolerance, alpha))
    line = power_line(rows, tolerance, alpha)
    if line:
        say(line)


__all__ = ["DEFAULT_TOLERANCE", "ONE_SIDED", "ONLY_NEW", "ONLY_REF", "Row", "Sample", "compare", "compare_paths",
           "judge", "load_runs", "power_line", "print_report", "summary_line", "welch"]
