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
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT as PERF  # noqa: E402
from _common import environment  # noqa: E402

TIME_FIELDS = {"user": r"User time \(seconds\): ([\d.]+)", "system": r"System time \(seconds\): ([\d.]+)",
               "wall": r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)",
               "max_rss_kib": r"Maximum resident set size \(kbytes\): (\d+)", "exit": r"Exit status: (\d+)"}


def gnu_time(path: Path) -> dict[str, float]:
    """The fields above of one ``/usr/bin/time -v`` report (wall in seconds)."""
    text = path.read_text()
    got: dict[str, float] = {}
    for key, pattern in TIME_FIELDS.items():
        m = re.search(pattern, text)
        if m is None:
            raise SystemExit(f"{path}: no '{pattern.split(' (')[0]}' line; is it the output of /usr/bin/time -v?")
        value = m.group(1)
        if key == "wall":
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            got[key] = seconds
        else:
            got[key] = float(value)
    return got


def _results(out: Path, hashes: list[str]) -> list[dict[str, Any]]:
    found = []
    for h in hashes:
        try:
            found.append(json.loads((out / "runs" / h / "result.json").read_text()))
        except (OSError, ValueError):
            found.append({"status": "missing"})
    return found


def _hashes(plan_file: Path, role: str) -> list[str]:
    d = json.loads(plan_file.read_text())
    return list(dict.fromkeys(e["hash"] for e in d["entries"] if e["role"] == role))


def _count(results: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.get("status", "missing")] = counts.get(r.get("status", "missing"), 0) + 1
    return dict(sorted(counts.items()))


def _seconds(results: list[dict[str, Any]]) -> float:
    return round(sum(float(r.get("train_seconds") or 0.0) for r in results), 1)


def measure(out: Path, times: list[Path]) -> dict[str, Any]:
    with open(out / "tune" / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    studies = json.loads((out / "tune" / "studies.json").read_text())
    recipe_plan = json.loads((out / "plan.json").read_text())
    trial_runs = _results(out, list(dict.fromkeys(t["run"] for t in trials if t["run"])))
    defaults = _results(out, _hashes(out / "plan.json", "student"))
    teachers = _results(out, _hashes(out / "plan.json", "teacher"))
    tuned = _results(out, _hashes(out / "tune" / "plan.json", "student"))
    full_epochs = max(int(r.get("epochs") or 0) for r in defaults)   # a trial that is not stopped trains as long
    # a tuned final run whose configuration is the recipe's own (trial 0 chosen) is a default run: counted once
    tuned_only = [r for r in tuned if r.get("config_hash") not in {d.get("config_hash") for d in defaults}]
    reports = [gnu_time(p) for p in times]
    wall = sum(r["wall"] for r in reports)
    cpu = sum(r["user"] + r["system"] for r in reports)
    trained = sum(int(t["epochs"] or 0) for t in trials)
    every = [r for r in (*teachers, *trial_runs, *defaults, *tuned_only) if r.get("git_commit")]
    return {
        "out": out.name, "recipe": recipe_plan["recipe"],
        "ran_on": {"commits": sorted({r["git_commit"] for r in every}), "device": every[0].get("device", ""),
                   "cpu_model": every[0].get("cpu_model", ""), "cpu_capability": every[0].get("cpu_capability", ""),
                   "torch_version": every[0].get("torch_version", ""), "threads": every[0].get("threads", "")},
        "invocations": len(reports), "exit_statuses": [int(r["exit"]) for r in reports],
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
        "max_rss_mib": round(max(r["max_rss_kib"] for r in reports) / 1024, 1),
        "studies": len(studies["studies"]), "trials_per_study": studies["trials"],
        "trials": len(trials), "trial_statuses": _count([{"status": t["status"] or t["state"]} for t in trials]),
        "trial_epochs_trained": trained, "trial_epochs_without_pruning": len(trials) * full_epochs,
        "trials_per_wall_hour": round(len(trials) / (wall / 3600), 1) if wall else None,
        "final_runs_defaults": len(defaults), "final_runs_defaults_statuses": _count(defaults),
        "final_runs_tuned": len(tuned), "final_runs_tuned_also_defaults": len(tuned) - len(tuned_only),
        "final_runs_tuned_statuses": _count(tuned),
        "train_seconds": {"teachers": _seconds(teachers), "trials": _seconds(trial_runs),
                          "defaults": _seconds(defaults), "tuned": _seconds(tuned_only)},
    }


def text(m: dict[str, Any]) -> str:
    h = lambda s: f"{s / 3600:.2f} h"  # noqa: E731
    t = m["train_seconds"]
    return "\n".join([
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
    ]) + "\n"


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
