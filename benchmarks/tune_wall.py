"""What a finished ``kdzoo tune`` cost: wall time, CPU time and trials per hour, from its output folder.

    /usr/bin/time -v -o TIME.txt kdzoo tune RECIPE.yaml --out OUT ...   (once, or again after each interruption)
    python benchmarks/tune_wall.py OUT --time TIME.txt [TIME2.txt ...] [--name tune_fashion_mnist]

The wall and CPU times are GNU time's reports of the ``kdzoo tune`` processes, summed over the invocations
that made the folder (a resumed tuning has several); the rest is read from OUT: the trials
(``tune/trials.csv``: how many, how many the pruner stopped, the epochs they trained against what
untouched trials would have), the final runs of the defaults (``plan.json``) and of the chosen
configurations (``tune/plan.json``), and each run's own training seconds (``result.json``), which
split the time between the search and the final runs. Writes results/perf/NAME.{json,txt}; the commit,
device and date are the runs' own (what the tuning ran on), not this script's.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import textwrap
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT as PERF  # noqa: E402
from _common import environment  # noqa: E402

from kdzoo.bench.execution.store import RunStore  # noqa: E402
from kdzoo.bench.plan import Plan  # noqa: E402
from kdzoo.bench.report.leaderboard import load_plan  # noqa: E402
from kdzoo.bench.tune import files  # noqa: E402
from kdzoo.bench.tune.report import read_trials  # noqa: E402

# key -> (GNU time's label, the value's form)
TIME_FIELDS = {"user": ("User time (seconds)", r"[\d.]+"), "system": ("System time (seconds)", r"[\d.]+"),
               "wall": ("Elapsed (wall clock) time (h:mm:ss or m:ss)", r"[\d:.]+"),
               "max_rss_kib": ("Maximum resident set size (kbytes)", r"\d+"), "exit": ("Exit status", r"\d+")}


def _refuse(message: str) -> None:
    """Bad input: one line on stderr, exit status 2 (as kdzoo's commands do)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def gnu_time(path: Path) -> dict[str, float]:
    """The fields above of one ``/usr/bin/time -v`` report (wall in seconds)."""
    try:
        text = path.read_text()
    except OSError as e:
        _refuse(f"{path}: cannot read it ({e.strerror}); pass the files /usr/bin/time -v -o wrote")
    got: dict[str, float] = {}
    for key, (label, form) in TIME_FIELDS.items():
        m = re.search(f"{re.escape(label)}: ({form})", text)
        if m is None:
            _refuse(f"{path}: no '{label}' line; is it the output of /usr/bin/time -v?")
        value = m.group(1)
        if key == "wall":
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            got[key] = seconds
        else:
            got[key] = float(value)
    return got


def _results(store: RunStore, hashes: list[str]) -> list[dict[str, Any]]:
    return [store.result(h) or {"status": "missing"} for h in hashes]


def _count(statuses: Any) -> dict[str, int]:
    return dict(sorted(collections.Counter(statuses).items()))


def _seconds(results: list[dict[str, Any]]) -> float:
    return round(sum(float(r.get("train_seconds") or 0.0) for r in results), 1)


def measure(out: Path, times: list[Path]) -> dict[str, Any]:
    where, store = files.folder(out), RunStore(out)
    trials = read_trials(where)
    studies = files.read_json(where / files.STUDIES)
    if not isinstance(studies, dict):
        _refuse(f"{out}: no finished tuning there ({files.TUNE_DIR}/{files.STUDIES} is missing); "
                         "pass the folder given to kdzoo tune --out")
    plan, tuned_plan = load_plan(out), Plan.from_dict(files.read_json(where / files.PLAN))
    default_hashes, tuned_hashes = plan.hashes("student"), tuned_plan.hashes("student")
    trial_runs = _results(store, list(dict.fromkeys(h for h in trials.run if isinstance(h, str) and h)))
    defaults, teachers = _results(store, default_hashes), _results(store, plan.hashes("teacher"))
    # a tuned final run with the recipe's own configuration (trial 0 chosen) is a default run: counted once
    tuned_only = _results(store, [h for h in tuned_hashes if h not in set(default_hashes)])
    full_epochs = max(int(r.get("epochs") or 0) for r in defaults)   # a trial that is not stopped trains as long
    reports = [gnu_time(p) for p in times]
    wall = sum(r["wall"] for r in reports)
    cpu = sum(r["user"] + r["system"] for r in reports)
    every = [r for r in (*teachers, *trial_runs, *defaults, *tuned_only) if r.get("git_commit")]
    return {
        "out": out.name, "recipe": plan.recipe,
        "ran_on": {"commits": sorted({r["git_commit"] for r in every}), "device": every[0].get("device", ""),
                   "cpu_model": every[0].get("cpu_model", ""), "cpu_capability": every[0].get("cpu_capability", ""),
                   "torch_version": every[0].get("torch_version", ""), "threads": every[0].get("threads", "")},
        "invocations": len(reports), "exit_statuses": [int(r["exit"]) for r in reports],
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
        "max_rss_mib": round(max(r["max_rss_kib"] for r in reports) / 1024, 1),
        "studies": len(studies["studies"]), "trials_per_study": studies["trials"],
        "trials": len(trials), "trial_statuses": _count(trials.status.where(trials.status != "", trials.state)),
        "trial_epochs_trained": int(trials.epochs.fillna(0).sum()),
        "trial_epochs_without_pruning": len(trials) * full_epochs,
        "trials_per_wall_hour": round(len(trials) / (wall / 3600), 1) if wall else None,
        "final_runs_defaults": len(defaults), "final_runs_defaults_statuses": _count(r["status"] for r in defaults),
        "final_runs_tuned": len(tuned_hashes), "final_runs_tuned_also_defaults": len(tuned_hashes) - len(tuned_only),
        "final_runs_tuned_statuses": _count(r["status"] for r in _results(store, tuned_hashes)),
        "train_seconds": {"teachers": _seconds(teachers), "trials": _seconds(trial_runs),
                          "defaults": _seconds(defaults), "tuned": _seconds(tuned_only)},
    }


def text(m: dict[str, Any]) -> str:
    h = lambda s: f"{s / 3600:.2f} h"  # noqa: E731
    t = m["train_seconds"]
    lines = [
        f"kdzoo tune {m['recipe']}: {m['invocations']} invocation(s), exit {m['exit_statuses']}",
        f"ran on: {m['ran_on']['device']}, {m['ran_on']['cpu_model']}, {m['ran_on']['cpu_capability']}, "
        f"torch {m['ran_on']['torch_version']}, {m['ran_on']['threads']} thread(s) a run; "
        f"commit(s) {', '.join(m['ran_on']['commits'])}",
        f"wall {h(m['wall_seconds'])} ({m['wall_seconds']:.0f} s); CPU {h(m['cpu_seconds'])} "
        f"({m['cpu_seconds']:.0f} s); largest process {m['max_rss_mib']:.0f} MiB",
        f"trials: {m['trials']} ({m['studies']} studies x {m['trials_per_study']}), {m['trial_statuses']}; "
        f"{m['trials_per_wall_hour']} trials per wall hour",
        f"trial epochs trained: {m['trial_epochs_trained']} of {m['trial_epochs_without_pruning']} without pruning "
        f"({m['trial_epochs_trained'] / m['trial_epochs_without_pruning']:.0%})",
        f"final runs: {m['final_runs_defaults']} defaults {m['final_runs_defaults_statuses']}, "
        f"{m['final_runs_tuned']} tuned {m['final_runs_tuned_statuses']} "
        f"({m['final_runs_tuned_also_defaults']} of them the defaults' own runs)",
        f"training seconds (sum over runs, each on one thread): teacher {t['teachers']:.0f}, trials "
        f"{t['trials']:.0f}, defaults {t['defaults']:.0f}, tuned {t['tuned']:.0f}",
    ]
    # an 80-column terminal reads it as the file does
    return "".join(textwrap.fill(line, 80, subsequent_indent="    ") + "\n" for line in lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the tuning's output folder (kdzoo tune --out)")
    p.add_argument("--time", type=Path, nargs="+", required=True, help="/usr/bin/time -v reports, one per invocation")
    p.add_argument("--name", default=None, help="results/perf/NAME.{json,txt} (default: tune_<recipe name>)")
    args = p.parse_args()
    m = measure(args.out.resolve(), args.time)
    name = args.name or f"tune_{m['recipe']}"
    # committed results carry no machine's paths: the folders by their names only
    env = {**environment(), "command": " ".join(["python benchmarks/tune_wall.py", args.out.name, "--time",
                                                 *(t.name for t in args.time)])}
    PERF.mkdir(parents=True, exist_ok=True)
    (PERF / f"{name}.json").write_text(json.dumps({"benchmark": name, "environment": env, **m}, indent=2) + "\n")
    (PERF / f"{name}.txt").write_text(text(m))
    print(text(m), end="")


if __name__ == "__main__":
    main()
