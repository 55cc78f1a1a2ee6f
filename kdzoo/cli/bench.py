"""``kdzoo bench``, ``kdzoo leaderboard`` and ``kdzoo compare`` (added to the parser of main.py by ``add_commands``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..data import build_dataset
from ..engine.runfolder import ENDED
from ..errors import ConfigError


def add_commands(sub: Any) -> None:
    p = sub.add_parser("bench", help="run a benchmark recipe: pairs x methods x access x seeds, then leaderboards",
                       description="Run every run of a recipe (teachers first), skipping finished ones and resuming "
                                   "interrupted ones, then write leaderboard.csv, summary.csv, leaderboard.md and a "
                                   "plot into the output folder.")
    p.add_argument("recipe", metavar="RECIPE.yaml", help="the recipe (see recipes/README.md)")
    p.add_argument("--out", default=None, help="output folder and run store (default runs/<recipe name>; "
                                               "results/ holds the committed references)")
    add_launch_options(p)
    p.add_argument("--cohort", choices=["auto", "off"], default="auto",
                   help="auto: runs differing only in method train in lockstep, sharing data and teacher (default)")
    p.add_argument("--dry-run", action="store_true", help="list the planned runs and the work left; run nothing")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed or diverged run")
    p.add_argument("--retry-failed", action="store_true", help="run again the runs whose result is 'failed'")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--download", action="store_true",
                   help="download the recipe's dataset if it is missing (needs a network; Fashion-MNIST)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of a run's hash)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars; one log line per finished epoch and run")
    add_slurm_options(p)
    p.set_defaults(func=cmd_bench)

    lb = sub.add_parser("leaderboard", help="rebuild the leaderboards of a bench output folder from its run store",
                        description="Rebuild leaderboard.csv, summary.csv, leaderboard.md and the plot from "
                                    "OUT/plan.json and OUT/runs/*/result.json.")
    lb.add_argument("out", metavar="OUT", help="a kdzoo bench output folder")
    lb.set_defaults(func=cmd_leaderboard)

    cp = sub.add_parser("compare", help="compare a rerun with a reference leaderboard: differs / reproduced / "
                                        "consistent per method",
                        description="One row per (pair, method, access): reference and new mean ± std, the "
                                    "difference with a 95%% Welch interval and a verdict. 'differs': significant "
                                    "after Holm's correction over the rows; 'reproduced': the whole interval lies "
                                    "within ±tolerance; 'consistent': neither (with the difference it could detect "
                                    "and the seeds that would settle it).")
    cp.add_argument("reference", metavar="REFERENCE",
                    help="bench output folder or leaderboard.csv (e.g. results/quickstart)")
    cp.add_argument("new", metavar="NEW", help="bench output folder or leaderboard.csv (e.g. runs/quickstart)")
    cp.add_argument("--tolerance", type=float, default=None,
                    help="equivalence margin in points of the metric (default 1.0: about the seed spread of the "
                         "shipped CPU benchmarks, below the gains their README discusses)")
    cp.add_argument("--alpha", type=float, default=None, help="family-wise error rate of 'differs' (default 0.05)")
    cp.add_argument("--metric", default=None, help="leaderboard column to compare (default: the plan's metric, "
                                                   "else top1)")
    cp.add_argument("--strict", action="store_true", help="exit 1 when any row differs")
    cp.set_defaults(func=cmd_compare)


def add_launch_options(p: argparse.ArgumentParser) -> None:
    """Where units of work run (kdzoo bench, kdzoo tune)."""
    p.add_argument("--launcher", choices=["local", "slurm"], default="local",
                   help="local: this machine; slurm: one submitit job per run or cohort")
    p.add_argument("--workers", type=int, default=None,
                   help="local processes running units in parallel (default: one per CPU core, or one per GPU; "
                        "each run single-threaded unless its recipe sets cpu_threads)")


def add_slurm_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("slurm (override the recipe's slurm block)")
    s.add_argument("--partition", default=None)
    s.add_argument("--time-min", type=int, default=None, help="time limit per job in minutes")
    s.add_argument("--gpus-per-job", type=int, default=None)
    s.add_argument("--cpus-per-task", type=int, default=None)
    s.add_argument("--array-parallelism", type=int, default=None, help="max jobs of an array running at once")
    s.add_argument("--slurm-cluster", choices=["slurm", "local", "debug"], default=None,
                   help="submitit backend: slurm (default), or local/debug to try the Slurm path on this machine")


def launch_settings(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    """(workers, slurm overrides) from the options of ``add_launch_options`` and ``add_slurm_options``, checked."""
    from ..bench.launch import default_workers

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    slurm_flags = [f"--{k.replace('_', '-')}" for k in ("partition", "time_min", "gpus_per_job", "cpus_per_task",
                                                        "array_parallelism", "slurm_cluster")
                   if getattr(args, k) is not None]
    if slurm_flags and args.launcher != "slurm":
        raise ConfigError(f"{', '.join(slurm_flags)}: Slurm options, given without --launcher slurm")
    if args.workers not in (None, 1) and args.launcher == "slurm":
        raise ConfigError("--workers applies to --launcher local; with slurm use --array-parallelism")
    workers = args.workers or (1 if args.launcher == "slurm" else default_workers(args.device))
    slurm = {"partition": args.partition, "time_min": args.time_min, "gpus_per_job": args.gpus_per_job,
             "cpus_per_task": args.cpus_per_task, "array_parallelism": args.array_parallelism}
    return workers, slurm


# ------------------------------------------------------------------ bench
def cmd_bench(args: argparse.Namespace) -> int:
    # kdzoo.bench is imported when a command needs it: it loads pandas, about 0.9 s of every start-up
    from ..bench.recipe import load_recipe
    from ..bench.runner import default_out, run_bench
    from ..data import build_dataset

    workers, slurm = launch_settings(args)
    recipe = load_recipe(args.recipe)
    out = Path(args.out) if args.out else default_out(recipe)
    if args.dry_run:
        return dry_run(recipe, out, args, workers)
    if args.download:  # fetched before anything is planned or written
        build_dataset(recipe.dataset, data_root=args.data_root, download=True)
    report = run_bench(recipe, out, launcher=args.launcher, workers=workers, cohort=args.cohort,
                       fail_fast=args.fail_fast, data_root=args.data_root, device=args.device,
                       retry_failed=args.retry_failed, slurm=slurm, slurm_cluster=args.slurm_cluster,
                       progress=not args.no_progress, lines=True)
    print_summary(report.outputs["summary"], recipe.metric)
    counts: dict[str, int] = {}
    for status in report.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    print(f"{len(report.statuses)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + f" ({len(report.ran)} trained now, {report.skipped_done} were already done)")
    for key in ("csv", "summary", "markdown", "plot", "curves"):
        if key in report.outputs:
            print(f"  {report.outputs[key]}")
    compare_with_reference(recipe.name, out)
    if report.stopped:
        print(f"stopped (--fail-fast): {report.stopped}")
    return 0 if report.ok else 1


def compare_with_reference(name: str, out: Path) -> None:
    """End a sweep with its comparison against the committed reference results/<name>/, when there is one."""
    from ..bench import compare

    ref = Path("results") / name
    if not (ref / "leaderboard.csv").is_file() or ref.absolute() == out.absolute():
        return
    try:
        rows, metric = compare.compare_paths(ref, out)
    except ConfigError as exc:
        print(f"no comparison with {ref}: {exc}")
        return
    print()
    compare.print_report(rows, metric, compare.DEFAULT_TOLERANCE, compare.DEFAULT_ALPHA,
                         title=f"{metric} (%): reference {ref} vs this run {out}")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..bench import compare

    tolerance = compare.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    alpha = compare.DEFAULT_ALPHA if args.alpha is None else args.alpha
    rows, metric = compare.compare_paths(args.reference, args.new, args.metric, tolerance, alpha)
    compare.print_report(rows, metric, tolerance, alpha)
    return 1 if args.strict and any(r.verdict == "differs" for r in rows) else 0


def print_summary(path: Path, metric: str) -> None:
    import pandas as pd  # lazy like kdzoo.bench (see cmd_bench)
    try:
        summary = pd.read_csv(path)
    except (OSError, ValueError):
        return
    if summary.empty:
        return
    table = Table(title=f"{metric} (%), mean ± std over seeds; Δ paired by seed [95% CI]")
    for col in ("pair", "rank", "method", "access", "mean ± std", "Δ vs CE", "Δ vs KD", "done"):
        table.add_column(col)
    for _, r in summary.sort_values(["teacher", "student", "rank"], na_position="last").iterrows():
        shown = r.get("rank_shown")
        rank = str(shown) if isinstance(shown, str) and shown else ("" if pd.isna(r["rank"]) else str(int(r["rank"])))
        table.add_row(f"{r.teacher}→{r.student}", rank, str(r.label),
                      str(r.access), _pm(r["mean"], r["std"]), _ci(r, "ce"), _ci(r, "kd"),
                      f"{int(r.n_finished)}/{int(r.n_seeds)}")
    Console(width=max(Console().width, 140)).print(table)


def _pm(mean: float, std: float) -> str:
    if mean != mean:
        return "—"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std == std else "")


def _ci(r: Any, name: str) -> str:
    mean, low, high = r[f"delta_{name}"], r[f"delta_{name}_low"], r[f"delta_{name}_high"]
    if mean != mean:
        return "—"
    return f"{mean:+.2f}" + (f" [{low:+.2f}, {high:+.2f}]" if low == low else "")


def dry_run(recipe: Any, out: Path, args: argparse.Namespace, workers: int = 1) -> int:
    from ..bench.eta import time_left  # lazy like kdzoo.bench (see cmd_bench)
    from ..bench.store import RunStore
    from ..bench.sweep import TRAIN_SIZES, estimate, expand, make_units

    plan = expand(recipe, out, device=args.device)
    store = RunStore(out)
    sizes = dict(TRAIN_SIZES)
    if recipe.dataset not in sizes:
        try:  # a dataset kdzoo does not know the size of (a plugin's): look if it is at hand
            sizes[recipe.dataset] = len(build_dataset(recipe.dataset, data_root=args.data_root).train)
        except Exception:
            pass
    teachers = plan.hashes("teacher")
    students = [h for h in plan.hashes("student") if h not in teachers]
    units = make_units(plan.specs, students, args.cohort)
    unit_of = {h: i + 1 for i, u in enumerate(units) for h in u}

    table = Table(title=f"{recipe.name}: planned runs ({recipe.path} -> {store.root})")
    for col in ("#", "role", "teacher → student", "method", "access", "seed", "hash", "status", "cohort",
                "images", "steps"):
        table.add_column(col, overflow="fold")
    total_images, total_steps, unknown, left = 0, 0, False, 0
    statuses: dict[str, int] = {}
    seen: set[str] = set()
    for i, e in enumerate(plan.entries, 1):
        spec = plan.specs[e.hash]
        status = store.status(e.hash)
        images, steps = estimate(spec, sizes)
        first = e.hash not in seen
        seen.add(e.hash)
        if first:
            statuses[status] = statuses.get(status, 0) + 1
            if status not in ENDED:
                left += 1
                if images is None:
                    unknown = True
                else:
                    total_images += images
                    total_steps += steps
        pair = e.student if e.role == "teacher" else f"{e.teacher_model} → {e.student}"
        table.add_row(str(i), e.role, pair, e.label, e.access, str(e.seed), e.hash,
                      status + ("" if first else " (shared)"), str(unit_of.get(e.hash, "")) if e.role != "teacher"
                      else "", _big(images), _big(steps))
    Console(width=max(Console().width, 150)).print(table)
    distinct = len(plan.specs)
    print(f"{len(plan.entries)} leaderboard rows, {distinct} distinct runs ({len(teachers)} of them teachers trained "
          f"first): " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    n_units = (sum(1 for h in teachers if store.status(h) not in ENDED)
               + sum(1 for u in units if any(store.status(h) not in ENDED for h in u)))
    print(f"left to run: {left} runs in {n_units} units of work (cohort {args.cohort}); about "
          f"{_big(total_images)} training images through a student, {_big(total_steps)} optimizer steps"
          f"{' (plus runs on a dataset of unknown size)' if unknown else ''}")
    eta = time_left(store, [spec for h, spec in plan.specs.items() if store.status(h) not in ENDED],
                    sizes).describe(workers)
    if eta:
        print(eta)
    return 0


def _big(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


# ------------------------------------------------------------- leaderboard
def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..bench import leaderboard  # lazy like kdzoo.bench (see cmd_bench)

    out = Path(args.out)
    if not out.is_dir():
        raise ConfigError(f"no such folder: {out}")
    leaderboard.check_store(out)
    paths = leaderboard.build(out)
    from ..bench.tune.report import build_tuned   # a folder kdzoo tune wrote: its tuned leaderboard too
    paths.update(build_tuned(out))
    plan = leaderboard.load_plan(out)
    print_summary(paths["summary"], plan.metric)
    for key in ("csv", "summary", "markdown", "plot", "curves", "tuned_markdown", "tuning_plot", "sensitivity_plot"):
        if key in paths:
            print(f"  {paths[key]}")
    return 0


__all__ = ["add_commands", "add_launch_options", "add_slurm_options", "dry_run", "launch_settings"]
