"""The tuned leaderboard: ``tuned_leaderboard.md`` / ``.csv`` and the tuning figures, from the store alone.

Per (pair, method, access): the defaults' and the tuned configuration's test top-1 (mean ± std over the
recipe's seeds), tuned minus defaults paired by seed, the differences to *tuned* CE and *tuned* KD paired by
seed with their intervals and verdicts (verdict.py: kdzoo.stats), the chosen values, the budget the method got
(trials, how many pruned, failed or diverged) and its sensitivity: the median and interquartile range of validation
top-1 over its trials and the share of trials that collapsed (kdzoo.stats's collapse: diverged, or at or
below chance + 15% of the way to 100%).

How trials count in the sensitivity. The median and quartiles are over the trials that trained to the
end: a finished trial with its validation top-1 after the last epoch, a diverged one at chance. Pruned
trials are left out of them (their only value is an early one, and mixing epoch-2 readings with
epoch-20 ones would say more about learning speed than about the configuration), so with a pruner the
median describes the configurations worth finishing. The collapsed share is over every trial that
ran: a pruned trial counts as collapsed when it was still at or below the collapse threshold when stopped.
A failed trial (an error) counts nowhere.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...engine.checkpoint import atomic_write_text
from ..execution.store import RunStore
from ..plan import Plan
from ..report import leaderboard
from . import files, verdict
from .studies import shown

TUNED_MD, TUNED_CSV = "tuned_leaderboard.md", "tuned_leaderboard.csv"
KEY = ["teacher", "student", "label", "access"]
WORDS = ("vs_ce", "vs_kd", "rank_shown")   # the tuned runs' verdicts and ranks: blank until one of them has finished


def trial_scores(trials: pd.DataFrame, chance: float, *, pruned: bool = True) -> pd.Series:
    """Each trial's validation top-1 as the sensitivity counts it (module docstring): finished -> its value,
    diverged -> chance, pruned -> its value when stopped (NaN with ``pruned=False``), failed -> NaN."""
    def score(r: Any) -> float:
        if r.status == "finished":
            return float(r.value)
        if r.status == "diverged":
            return chance
        if r.status == "pruned" and pruned:
            return float(r.last_val_top1)
        return math.nan
    return trials.apply(score, axis=1) if len(trials) else pd.Series(dtype=float)


def sensitivity(trials: pd.DataFrame, classes: int) -> dict[str, float]:
    chance, limit = 100.0 / classes, verdict.collapse_limit(classes)
    ended = trial_scores(trials, chance, pruned=False).dropna()
    ran = trial_scores(trials, chance).dropna()
    down = [verdict.is_collapsed(v, str(trials.status[i]), limit) for i, v in ran.items()]
    out = {"val_median": math.nan, "val_q25": math.nan, "val_q75": math.nan, "val_n": len(ended),
           "collapsed": sum(down) / len(down) if down else math.nan}
    if len(ended):
        out.update(val_median=float(ended.median()), val_q25=float(ended.quantile(0.25)),
                   val_q75=float(ended.quantile(0.75)))
    return out


def read_trials(where: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(where / files.TRIALS, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=files.TRIAL_COLUMNS)
    df["status"] = df["status"].fillna("").astype(str)
    return df


def table(out: str | Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The tuned leaderboard's rows and what the search was (studies.json); None without a tuning in ``out``."""
    where = files.folder(out)
    meta = files.read_json(where / files.STUDIES)
    if not isinstance(meta, dict):
        return None
    plan, store = leaderboard.load_plan(out), RunStore(out)
    classes = int(meta["classes"])
    trials = read_trials(where)
    picks = files.read_json(where / files.CHOSEN) or {}
    tuned_d = files.read_json(where / files.PLAN)
    tuned = Plan.from_dict(tuned_d) if isinstance(tuned_d, dict) else None
    rows_d = leaderboard.rows(plan, store)
    rows_t = leaderboard.rows(tuned, store) if tuned is not None and tuned.entries else rows_d.iloc[0:0]
    s_d = verdict.summary(plan, rows_d, classes).set_index(KEY)
    s_t = verdict.summary(tuned, rows_t, classes).set_index(KEY) if tuned is not None else pd.DataFrame()
    metric = leaderboard.ranked_metric(plan)
    out_rows = []
    for key, d in s_d.iterrows():
        teacher, student, label, access = key
        study = next((s for s in meta["studies"] if s["label"] == label and any(
            r[0] == teacher and r[2] == student and r[3] == access for r in s["rows"])), None)
        t = trials[trials.study == study["name"]] if study else trials.iloc[0:0]
        tr = s_t.loc[key] if key in s_t.index else None
        row: dict[str, Any] = dict(zip(KEY, key))
        row.update({"study": study["name"] if study else "", "defaults_mean": d["mean"], "defaults_std": d["std"],
                    "defaults_n_kept": d["n_kept"], "defaults_n_finished": d["n_finished"],
                    "defaults_collapsed": _text(d["collapsed"])})
        for col in (c for c in verdict.COLUMNS if c not in KEY):
            name = col if col.startswith(("delta", "vs", "rank")) else f"tuned_{col}"
            row[name] = tr[col] if tr is not None else (
                "" if col in (*WORDS, "collapsed") else math.nan)
        row["tuned_collapsed"] = _text(row["tuned_collapsed"])
        if not row["tuned_n_finished"] == row["tuned_n_finished"] or not row["tuned_n_finished"]:
            row.update(dict.fromkeys(WORDS, ""))   # no final run of the chosen configuration has finished
        gain = _paired_gain(rows_d, rows_t, key, metric)
        row.update({"gain": gain[0], "gain_low": gain[1], "gain_high": gain[2], "gain_n": gain[3]})
        pick = picks.get(row["study"])
        row["chosen_trial"] = pick["trial"] if pick else ""
        row["chosen_val_top1"] = pick["val_top1"] if pick else math.nan
        row["chosen"] = json.dumps(shown(pick["params"]), sort_keys=True) if pick else ""
        row.update({"trials": len(t), "trials_budget": int(meta.get("trials", 0)),
                    "pruned": int((t.status == "pruned").sum()), "failed": int((t.state == "FAIL").sum()),
                    "diverged": int((t.status == "diverged").sum())})
        row.update(sensitivity(t, classes))
        out_rows.append(row)
    return pd.DataFrame(out_rows), meta


def _text(x: Any) -> str:
    return x if isinstance(x, str) else ""


def _paired_gain(rows_d: pd.DataFrame, rows_t: pd.DataFrame, key: tuple, metric: str) -> tuple:
    def finished(df: pd.DataFrame) -> pd.DataFrame:
        m = (df.teacher == key[0]) & (df.student == key[1]) & (df.label == key[2]) & (df.access == key[3])
        return df[m & (df.status == "finished")][["seed", metric]]
    both = finished(rows_t).merge(finished(rows_d), on="seed", suffixes=("_t", "_d"))
    return verdict.paired(list(both[f"{metric}_t"] - both[f"{metric}_d"]))


def _pm(mean: float, std: float) -> str:
    return "—" if mean != mean else f"{mean:.2f}" + (f" ± {std:.2f}" if std == std else "")


def _ci(mean: float, low: float, high: float, n: Any) -> str:
    if mean != mean:
        return "—"
    return f"{mean:+.2f}" + (f" [{low:+.2f}, {high:+.2f}]" if low == low else "") + f" (n={int(n)})"


def _values(text: str) -> str:
    if not text:
        return "—"
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in json.loads(text).items())


def _seeds(n_kept: Any, n_seeds: Any, collapsed: str) -> str:
    if not n_kept == n_kept:
        return ""
    return f" ({int(n_kept)}/{int(n_seeds)} seeds" + (f"; collapsed {collapsed})" if collapsed else ")")


def markdown(df: pd.DataFrame, meta: dict[str, Any], plan: Plan) -> str:
    classes = int(meta["classes"])
    limit = verdict.collapse_limit(classes)
    lines = [f"# Tuned leaderboard: {plan.recipe}", "",
             f"Every method got the same search: {meta.get('trials')} trials per (pair, method, access), `ce` "
             "included, over the shared training settings and its own loss hyperparameters (`tune:` block of "
             "the recipe; recipes/README.md). Trials train on the student's own training images less a held-out "
             "share and are judged by validation top-1 after the last epoch on that share; the test split is "
             "never evaluated during the search. The chosen configuration (the best finished trial) is retrained "
             "with every recipe seed on the full student data and evaluated on the test split, like the defaults.",
             "", f"Test top-1 ({leaderboard.METRIC_NAMES[leaderboard.ranked_metric(plan)]}): mean ± std over the "
             "seeds that did not collapse (kdzoo.stats, docs/statistics.md: a seed that diverged or ended at or "
             f"below {limit:.2f}% is collapsed, named and left out). `Δ vs tuned CE` and `Δ vs tuned KD`: the tuned "
             "runs of a pair form one family, with simultaneous 95% intervals for every pair of methods; `vs CE` "
             "and `vs KD` are read off them, `rank` gives the ranks they allow (KD at the method's own teacher "
             "access; — where the pair has none). `tuned − defaults`: paired by seed, 95% t interval (one "
             "comparison). `budget`: trials run (pruned / failed / diverged). `val median [IQR]`: validation top-1 over the trials trained to "
             "the end (n; a diverged one at chance; pruned trials, whose only value is an early one, are left "
             "out); `collapsed`: share of all trials that diverged or stayed at or below the same threshold, a "
             "pruned one by its value when stopped.", ""]
    multi_access = df.access.nunique() > 2 if len(df) else False
    for (teacher, student), g in (df.groupby(["teacher", "student"], sort=False) if len(df) else []):
        lines += [f"## {teacher} → {student}", ""]
        cols = ["method"] + (["access"] if multi_access else []) + [
            "defaults", "tuned", "tuned − defaults", "Δ vs tuned CE [simultaneous 95%]", "vs CE",
            "Δ vs tuned KD [simultaneous 95%]", "vs KD", "rank", "chosen",
            "budget", "val median [IQR]", "collapsed"]
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, r in g.iterrows():
            budget = f"{r.trials}/{r.trials_budget}" if r.trials != r.trials_budget else f"{r.trials}"
            extra = [f"{n} {w}" for n, w in ((r.pruned, "pruned"), (r.failed, "failed"), (r.diverged, "diverged")) if n]
            sens = ("—" if r.val_median != r.val_median else
                    f"{r.val_median:.2f} [{r.val_q25:.2f}, {r.val_q75:.2f}] (n={int(r.val_n)})")
            chosen = _values(r.chosen) + (" (the recipe's)" if str(r.chosen_trial) == "0" else "")
            cells = [f"`{r.label}`"] + ([str(r.access)] if multi_access else []) + [
                _pm(r.defaults_mean, r.defaults_std) + _seeds(r.defaults_n_kept, r.defaults_n_finished, r.defaults_collapsed),
                _pm(r.tuned_mean, r.tuned_std) + _seeds(r.tuned_n_kept, r.tuned_n_finished, r.tuned_collapsed),
                _ci(r.gain, r.gain_low, r.gain_high, r.gain_n),
                _ci(r.delta_ce, r.delta_ce_low, r.delta_ce_high, r.delta_ce_n), str(r.vs_ce or "—"),
                _ci(r.delta_kd, r.delta_kd_low, r.delta_kd_high, r.delta_kd_n), str(r.vs_kd or "—"),
                str(r.rank_shown or "—"), chosen, budget + (f" ({', '.join(extra)})" if extra else ""), sens,
                "—" if r.collapsed != r.collapsed else f"{r.collapsed:.0%}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def build_tuned(out: str | Path) -> dict[str, Path]:
    """Write the tuned leaderboard and the tuning figures into ``out``; {} when ``out`` holds no tuning."""
    made = table(out)
    if made is None:
        return {}
    df, meta = made
    out = Path(out)
    paths = {"tuned_csv": out / TUNED_CSV, "tuned_markdown": out / TUNED_MD}
    atomic_write_text(paths["tuned_csv"], df.to_csv(index=False))
    atomic_write_text(paths["tuned_markdown"], markdown(df, meta, leaderboard.load_plan(out)))
    from . import figures
    paths.update(figures.write(out, read_trials(files.folder(out)), meta))
    return paths


__all__ = ["TUNED_CSV", "TUNED_MD", "build_tuned", "read_trials", "sensitivity", "table",
           "trial_scores"]
