"""``kdzoo tune``: every method of a recipe searched with the same budget on validation data, then final runs."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..engine.terminal import say
from ..errors import ConfigError
from .bench import add_launch_options, add_slurm_options, launch_settings, say_outputs, workers_of
from .report import report_after


def add_commands(sub: Any) -> None:
    p = sub.add_parser("tune", help="tune every method of a recipe with one budget on validation data, then "
                                    "train the chosen configurations and the defaults with every seed",
                       description="Search each (pair, method) of a recipe with its tune: block (the same number "
                                   "of trials for every method, ce included; Optuna, on a validation split carved "
                                   "from the student's own training data; the test split is never read), then "
                                   "train the chosen configuration and the recipe's own with every seed and write "
                                   "tuned_leaderboard.md beside the defaults' leaderboard.md. Resumable like "
                                   "kdzoo bench. See recipes/README.md.")
    p.add_argument("recipe", metavar="RECIPE.yaml", help="a recipe with a tune: block")
    p.add_argument("--out", default=None, help="output folder and run store (default runs/<recipe name>, the "
                                               "same as kdzoo bench: the defaults' runs are shared)")
    add_launch_options(p)
    p.add_argument("--cohort", choices=["auto", "off"], default="auto",
                   help="final runs of the defaults differing only in method train in lockstep (default auto)")
    p.add_argument("--dry-run", action="store_true", help="show the studies, the budget and an estimate; run nothing")
    p.add_argument("--search-only", action="store_true",
                   help="run the trials and write the chosen configurations, not the final runs")
    p.add_argument("--data-root", default=None, help="folder holding datasets (also $KDZOO_DATA)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (not part of a run's hash)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars; one log line per epoch and trial")
    add_slurm_options(p)
    p.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    # kdzoo.bench loads pandas, optuna is imported by the search: both only when this command runs
    from ..bench.recipe.parse import load_recipe
    from ..bench.runner import default_out

    slurm = launch_settings(args)
    recipe = load_recipe(args.recipe)
    workers = workers_of(args)
    if recipe.tune is None:
        raise ConfigError(f"{args.recipe} has no 'tune:' block (see recipes/README.md); 'kdzoo bench' runs it "
                          f"with its defaults")
    out = Path(args.out) if args.out else default_out(recipe)
    if args.dry_run:
        from ..bench.tune.budget import describe
        for line in describe(recipe, out, workers, args.device):
            say(line)
        return 0
    from ..bench.tune.runner import run_tune
    report = run_tune(recipe, out, launcher=args.launcher, workers=workers, data_root=args.data_root,
                      device=args.device, search_only=args.search_only, cohort=args.cohort, slurm=slurm,
                      slurm_cluster=args.slurm_cluster, progress=not args.no_progress, lines=True)
    say(f"search: {report.trials}/{report.budget} trials ended ({report.trained} trained now)" +
        ("" if report.search_only else f"; {len(report.statuses)} final runs: " + ", ".join(
            f"{n} {s}" for s, n in sorted(_count(report.statuses.values()).items()))))
    say_outputs(report.outputs)
    report_after(out)
    return 0 if report.ok else 1


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


__all__ = ["add_commands"]
