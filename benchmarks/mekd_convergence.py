"""MEKD's convergence: top-1 against generator steps and student steps, soft and hard (issue 14, item 1).

    python benchmarks/mekd_convergence.py [RECIPE] [--gen-steps 400 1500 3000 6000 15000]
        [--schedules 5x50 40x50] [--seeds 0] [--workers 2] [--out runs/NAME]

Takes every ``mekd`` method of the recipe (default recipes/b2kd_fashion_mnist.yaml: mekd-soft,
mekd-hard) and runs it at each ``gen_steps`` x student schedule (EPOCHSxBATCHES: epochs x generated
batches per epoch), everything else as the recipe says. Runs live in OUT/runs/<hash> like
``kdzoo bench``'s (default OUT: the bench's, runs/<recipe name>; resumable; a generator is trained
once per gen_steps and cached in OUT/cache, reused by every student schedule). Writes
OUT/mekd_convergence.csv (top-1, best top-1, teacher queries, generator and student seconds per
point) and OUT/mekd_convergence.png. Each point is a full run: the default grid costs hours on CPU;
try ``--gen-steps 20 40 --schedules 1x5`` first.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from b2kd_study import (convergence_points, open_study, plot, run_points, run_script,
                                    study_arguments, write_csv)

REPO = Path(__file__).resolve().parents[1]


def schedule(text: str) -> tuple[int, int]:
    epochs, _, per_epoch = text.partition("x")
    try:
        return int(epochs), int(per_epoch)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a schedule is EPOCHSxBATCHES, e.g. 5x50 (got {text!r})") from None


def main(argv: list[str] | None = None) -> None:
    ap = study_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), REPO)
    ap.add_argument("--gen-steps", type=int, nargs="+", default=[400, 1500, 3000, 6000, 15000])
    ap.add_argument("--schedules", type=schedule, nargs="+", default=[(5, 50), (40, 50)])
    ap.set_defaults(seeds=[0])
    args = ap.parse_args(argv)
    recipe, out, plan = open_study(args, REPO)
    points = convergence_points(plan, args.gen_steps, args.schedules, args.seeds)
    print(f"{len(points)} points ({len(args.gen_steps)} generator lengths x {len(args.schedules)} schedules "
          f"x mekd methods x {len(args.seeds)} seed(s)) in {out / 'runs'}")
    rows = run_points(recipe, points, out, workers=args.workers, cache_dir=args.cache_dir, data_root=args.data_root)
    print("wrote", write_csv(rows, out / "mekd_convergence.csv"),
          plot(rows, out / "mekd_convergence.png", "convergence", f"{recipe.name}: MEKD top-1 vs generator steps"))
    for r in rows:
        print(f"  {r['label']:10s} gen_steps {r['gen_steps']:>6} student {r['epochs']}x{r['steps_per_epoch']:<4} "
              f"top1 {r['top1']:.2f}  queries {r['teacher_queries']:>9}  {r['wall_seconds']:.0f}s")


if __name__ == "__main__":
    sys.exit(run_script(main, "mekd_convergence.py"))
