"""``kdzoo bench``, ``kdzoo leaderboard`` and ``kdzoo compare`` (added to the parser of main.py by ``add_commands``)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Callable

from ..data import build_dataset, train_size
from ..engine import runlog
from ..engine.runfolder import ENDED, ERROR_LOG, FAILED, RESULT
from ..engine.terminal import print_table, say
from ..errors import ConfigError
from .report import report_after


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
    p.add_argument("--add-to-out", action="store_true",
                   help="run in an --out that holds another recipe's sweep (its plan and leaderboard then show "
                        "this recipe; the other's runs stay and are reused)")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--download", action="store_true",
                   help="download the recipe's dataset if it is missing (needs a network; Fashion-MNIST)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of a run's hash)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars; one log line per finished epoch and run")
    p.add_argument("--log", default=None,
                   help="log every run's scalars: off | tensorboard | mlflow | tensorboard,mlflow, into "
                        "OUT/tensorboard and OUT/mlflow.db (default: the recipe's train.log, else off)")
    add_slurm_options(p)
    p.set_defaults(func=cmd_bench)

    lb = sub.add_parser("leaderboard", help="rebuild the leaderboards of a bench output folder from its run store",
                        description="Rebuild leaderboard.csv, summary.csv, leaderboard.md and the plot from "
                                    f"OUT/plan.json and OUT/runs/*/{RESULT}; with --from-rows, rebuild "
                                    "summary.csv, leaderboard.md and the plot from OUT/leaderboard.csv (never "
                                    "written), for a folder without its run store such as a committed reference.")
    lb.add_argument("out", metavar="OUT", help="a kdzoo bench output folder")
    lb.add_argument("--from-rows", action="store_true",
                    help="read the per-run rows of OUT/leaderboard.csv instead of the run store")
    lb.add_argument("--classes", type=int, default=None,
                    help="number of classes, for the collapse margin (default: as the runs recorded it; runs "
                         "made before kdzoo recorded it need it)")
    lb.set_defaults(func=cmd_leaderboard)

    cp = sub.add_parser("compare", help="compare a rerun with a reference leaderboard: differs / reproduced / "
                                        "consistent per method",
                        description="One row per (pair, method, access): reference and new mean ± std, the "
                                    "difference with a 95% Welch interval and a verdict. 'differs': significant "
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
    cp.add_argument("--strict", action="store_true",
                    help="exit 1 when any row differs or is on one side only")
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


def launch_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The Slurm overrides of ``add_slurm_options``, after checking the launch options (one line each)."""
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    slurm_flags = [f"--{k.replace('_', '-')}" for k in ("partition", "time_min", "gpus_per_job", "cpus_per_task",
                                                        "array_parallelism", "slurm_cluster")
                   if getattr(args, k) is not None]
    if slurm_flags and args.launcher != "slurm":
        raise ConfigError(f"{', '.join(slurm_flags)}: Slurm options, given without --launcher slurm")
    if args.workers not in (None, 1) and args.launcher == "slurm":
        raise ConfigError("--workers applies to --launcher local; with slurm use --array-parallelism")
    return {"partition": args.partition, "time_min": args.time_min, "gpus_per_job": args.gpus_per_job,
            "cpus_per_task": args.cpus_per_task, "array_parallelism": args.array_parallelism}


def workers_of(args: argparse.Namespace) -> int:
    from ..bench.execution.launch import default_workers
    return args.workers or (1 if args.launcher == "slurm" else default_workers(args.device))


# ------------------------------------------------------------------ bench
def cmd_bench(args: argparse.Namespace) -> int:
    # kdzoo.bench is imported when a command needs it: it loads pandas, about 0.9 s of every start-up
    from ..bench.recipe.parse import load_recipe
    from ..bench.runner import default_out, run_bench
    from ..data import build_dataset

    slurm = launch_settings(args)
    if args.log is not None:
        runlog.check_installed(args.log)   # a bad name or a missing package: one line, before anything runs
    recipe = load_recipe(args.recipe)
    out = Path(args.out) if args.out else default_out(recipe)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the sweep (it is created if missing)")
    workers = workers_of(args)
    if args.dry_run:
        return dry_run(recipe, out, args, workers)
    if args.download:  # fetched before anything is planned or written
        build_dataset(recipe.dataset, data_root=args.data_root, download=True)
    report = run_bench(recipe, out, launcher=args.launcher, workers=workers, cohort=args.cohort,
                       fail_fast=args.fail_fast, data_root=args.data_root, device=args.device,
                       retry_failed=args.retry_failed, slurm=slurm, slurm_cluster=args.slurm_cluster,
                       progress=not args.no_progress, lines=True, log=args.log, add_to_out=args.add_to_out)
    print_summary(report.outputs["summary"], recipe.metric)
    counts: dict[str, int] = {}
    for status in report.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    say(f"{len(report.statuses)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f" ({len(report.ran)} trained now, {report.skipped_done} were already done)")
    for line in advice(counts, report.stopped):
        say(line)
    say_outputs(report.outputs)
    report_after(out)
    compare_with_reference(recipe.name, out)
    if report.stopped:
        say(f"stopped (--fail-fast): {report.stopped}")
    return 0 if report.ok else 1


def say_outputs(paths: dict[str, Path]) -> None:
    """The files a sweep wrote, named once by folder: "in OUT: leaderboard.csv, ..." (short enough to wrap)."""
    shown = [Path(paths[k]) for k in ("csv", "summary", "markdown", "plot", "curves", "tuned_markdown", "tuned_csv",
                                      "tuning_plot", "sensitivity_plot") if k in paths]
    if shown:
        say(f"in {shown[0].parent}: " + ", ".join(p.name for p in shown))


def advice(counts: dict[str, int], stopped: str) -> list[str]:
    """What a rerun does about the runs that did not end well."""
    lines = []
    if counts.get(FAILED):
        lines.append(f"{counts[FAILED]} failed: their results are kept (tracebacks in runs/<hash>/{ERROR_LOG}); "
                     f"add --retry-failed to train them again")
    unfinished = sum(n for s, n in counts.items() if s not in ENDED)
    if unfinished and not stopped:
        lines.append(f"{unfinished} did not finish (see the lines above): run the same command again to resume "
                     f"them")
    return lines


def compare_with_reference(name: str, out: Path) -> None:
    """End a sweep with its comparison against the committed reference results/<name>/, when there is one."""
    from ..bench.report import compare

    ref = Path("results") / name
    if not (ref / "leaderboard.csv").is_file() or ref.absolute() == out.absolute():
        return
    try:
        rows, metric = compare.compare_paths(ref, out)
    except ConfigError as exc:
        say(f"no comparison with {ref}: {exc}")
        return
    say("")
    compare.print_report(rows, metric, compare.DEFAULT_TOLERANCE, compare.DEFAULT_ALPHA,
                         title=f"{metric} (%): reference {ref} vs this run {out}")


def cmd_compare(args: argparse.Namespace) -> int:
    from ..bench.report import compare

    tolerance = compare.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    alpha = compare.DEFAULT_ALPHA if args.alpha is None else args.alpha
    notes: list[str] = []
    rows, metric = compare.compare_paths(args.reference, args.new, args.metric, tolerance, alpha, notes)
    for note in notes:
        say(f"note: {note}")
    compare.print_report(rows, metric, tolerance, alpha)
    return 1 if args.strict and any(r.verdict in ("differs", *compare.ONE_SIDED) for r in rows) else 0


# What `kdzoo bench` and `kdzoo leaderboard` print per teacher-student pair: (header, cell of a summary.csv row).
# A cell is its text or (value, detail); the table moves details under values when the terminal is narrow.
SUMMARY_COLUMNS: list[tuple[str, Callable[[Any], Any]]] = [
    ("rank", lambda r: _rank(r)),
    ("method", lambda r: str(r.label) + ("" if r.access in ("logits", "none") else f" ({r.access})")),
    ("mean ± std", lambda r: _pm(r["mean"], r["std"])),
    ("Δ vs CE", lambda r: _ci(r, "ce")),
    ("vs CE", lambda r: str(r.get("vs_ce", "") or "")),
    ("Δ vs KD", lambda r: _ci(r, "kd")),
    ("seeds", lambda r: _seeds(r)),
]


def print_summary(path: Path, metric: str) -> None:
    """The leaderboard, one table per teacher-student pair, within the terminal's width."""
    import pandas as pd  # lazy like kdzoo.bench (see cmd_bench)
    try:
        summary = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError):
        return
    if summary.empty:
        return
    say(f"{metric} (%): mean ± std over kept seeds; Δ: paired by seed, with its simultaneous 95% interval; "
        f"vs CE: better, worse or tied from the same intervals (docs/statistics.md)")
    for (teacher, student), g in summary.groupby(["teacher", "student"], sort=False):
        g = g.sort_values(["rank", "label"], na_position="last")
        tt = g.teacher_top1.dropna()
        title = f"{teacher} → {student}" + (f" (teacher {tt.iloc[0]:.2f})" if len(tt) else "")
        print_table([h for h, _ in SUMMARY_COLUMNS], [[cell(r) for _, cell in SUMMARY_COLUMNS]
                                                      for _, r in g.iterrows()], title=title)


def _rank(r: Any) -> str:
    shown = r.get("rank_shown")
    if isinstance(shown, str) and shown:
        return shown
    return "" if r["rank"] != r["rank"] else str(int(r["rank"]))


def _seeds(r: Any) -> str:
    """Seeds kept in the tests of n planned, and how many collapsed (docs/statistics.md)."""
    kept = r.get("n_kept", math.nan)
    kept = int(kept) if kept == kept else int(r.n_finished)
    collapsed = r.get("n_collapsed", math.nan)
    collapsed = int(collapsed) if collapsed == collapsed else 0
    return f"{kept}/{int(r.n_seeds)}" + (f" ({collapsed} collapsed)" if collapsed else "")


def _pm(mean: float, std: float) -> str:
    if mean != mean:
        return "—"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std == std else "")


def _ci(r: Any, name: str) -> Any:
    mean, low, high = r.get(f"delta_{name}", math.nan), r.get(f"delta_{name}_low", math.nan), \
        r.get(f"delta_{name}_high", math.nan)
    if mean != mean:
        return "—"
    return (f"{mean:+.2f}", f"[{low:+.2f}, {high:+.2f}]" if low == low else "")


def dry_run(recipe: Any, out: Path, args: argparse.Namespace, workers: int = 1) -> int:
    from ..bench.execution.eta import time_left  # lazy like kdzoo.bench (see cmd_bench)
    from ..bench.execution.store import RunStore
    from ..bench.plan import estimate, expand, unit_phases

    plan = expand(recipe, out, device=args.device)
    store = RunStore(out)
    edited = store.check_owner(recipe.name, recipe.text, add=args.add_to_out)   # as the sweep would: refused here
    if edited:
        say(edited)
    sizes: dict[str, int] = {}
    if train_size(recipe.dataset) is None:
        try:  # a dataset that does not declare its size (a plugin's): look if it is at hand
            sizes[recipe.dataset] = len(build_dataset(recipe.dataset, data_root=args.data_root).train)
        except Exception:
            pass
    teacher_units, units = unit_phases(plan, cohort=args.cohort)   # the units the sweep would train
    teachers = [h for u in teacher_units for h in u]
    unit_of = {h: i + 1 for i, u in enumerate(units) for h in u}

    say(f"{recipe.name}: planned runs ({recipe.path} -> {store.root})")
    tables: dict[str, list[list[str]]] = {}   # one table per teacher-student pair, the teachers' first
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
        shown = status + ("" if first else " (shared)")
        if e.role == "teacher":
            tables.setdefault("teachers, trained first", []).append(
                [str(i), e.student, e.label, str(e.seed), e.hash, shown, _big(images), _big(steps)])
        else:
            tables.setdefault(f"{e.teacher_model} → {e.student}", []).append(
                [str(i), e.label, e.access, str(e.seed), e.hash, shown, str(unit_of.get(e.hash, "")), _big(images),
                 _big(steps)])
    for title, rows in tables.items():
        what = ["teacher", "method"] if title.startswith("teachers") else ["method", "access"]
        unit = [] if title.startswith("teachers") else ["unit"]
        print_table(["#", *what, "seed", "hash", "status", *unit, "images", "steps"], rows, title=title,
                    right=("#", "seed", "unit", "images", "steps"))
    distinct = len(plan.specs)
    say(f"{len(plan.entries)} leaderboard rows, {distinct} distinct runs ({len(teachers)} of them teachers trained "
        f"first): " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    n_units = (sum(1 for h in teachers if store.status(h) not in ENDED)
               + sum(1 for u in units if any(store.status(h) not in ENDED for h in u)))
    say(f"left to run: {left} runs in {n_units} units of work (cohort {args.cohort}); about "
        f"{_big(total_images)} training images through a student, {_big(total_steps)} optimizer steps"
        f"{' (plus runs on a dataset of unknown size)' if unknown else ''}")
    eta = time_left(store, [spec for h, spec in plan.specs.items() if store.status(h) not in ENDED],
                    sizes).describe(workers)
    if eta:
        say(eta)
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
    from ..bench.report import leaderboard  # lazy like kdzoo.bench (see cmd_bench)

    out = Path(args.out)
    if not out.is_dir():
        raise ConfigError(f"no such folder: {out}")
    if args.classes is not None and args.classes < 2:
        raise ConfigError(f"--classes must be at least 2, got {args.classes}")
    if args.from_rows:
        paths = leaderboard.build_from_rows(out, args.classes)
    else:
        leaderboard.check_store(out)
        paths = leaderboard.build(out, args.classes)
        from ..bench.tune.report import build_tuned   # a folder kdzoo tune wrote: its tuned leaderboard too
        paths.update(build_tuned(out))
    plan = leaderboard.load_plan(out)
    print_summary(paths["summary"], plan.metric)
    say_outputs(paths)
    report_after(out)
    return 0


__all__ = ["add_commands", "add_launch_options", "add_slurm_options", "launch_settings", "say_outputs", "workers_of"]
