"""Accuracy against teacher queries for every black-box method of a recipe, at equal budgets (issues 14, 24).

    python benchmarks/b2kd_queries.py [RECIPE] [--fractions 0.1 0.25 0.5 1] [--seeds 0 1 2]
        [--workers 2] [--out runs/NAME]

A black-box API bills per image. The real-image baselines (methods that query the teacher on the
student side's images: kd-probs, kd-label, ce-pseudo in recipes/b2kd_fashion_mnist.yaml) are trained
on each fraction f of the student side's images (train_fraction x f; the teacher is asked once per
image, so a run costs exactly that many queries). The generator-based methods (mekd, gen-kd-soft,
gen-ce-hard: no image of the student side reaches the teacher) run at the recipe's schedule (fresh
generated images every step) and with ``pool`` = the same numbers of images, generated and labelled
once; their generator's queries are counted in the total and shown apart. Runs live in OUT/runs/<hash>
like ``kdzoo bench``'s (default OUT: the bench's, runs/<recipe name>): at f = 1 the baselines are the
table's own runs, reused, and every run of a seed reuses its cached generator (OUT/cache).
Writes OUT/b2kd_queries.{csv,md,png}; the plot also shows OUT/mekd_convergence.csv when present
(benchmarks/mekd_convergence.py).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from b2kd_study import (markdown, open_study, plot, query_points, run_points, run_script,
                                    study_arguments, write_csv)

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    ap = study_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), REPO)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    args = ap.parse_args(argv)
    recipe, out, plan = open_study(args, REPO)
    points = query_points(plan, args.fractions, args.seeds)
    print(f"{len(points)} runs in {out / 'runs'}")
    rows = run_points(recipe, points, out, workers=args.workers, cache_dir=args.cache_dir, data_root=args.data_root)
    table = markdown(rows)
    (out / "b2kd_queries.md").write_text(f"# {recipe.name}: top-1 against teacher queries\n\n{table}")
    conv = out / "mekd_convergence.csv"
    convergence = list(csv.DictReader(conv.open())) if conv.is_file() else None
    print("wrote", write_csv(rows, out / "b2kd_queries.csv"),
          plot(rows, out / "b2kd_queries.png", "queries", f"{recipe.name}: top-1 vs teacher queries", convergence))
    print(table)


if __name__ == "__main__":
    sys.exit(run_script(main, "b2kd_queries.py"))
