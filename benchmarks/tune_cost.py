"""What a kdzoo tune of recipes/fashion_mnist.yaml costs: CPU seconds of a trial and of a final run, per method.

    python benchmarks/tune_cost.py [--methods ce kd dkd mlkd crld sdd] [--epochs 2 10]

For each student and method, a trial (4,800 training images, 1,200 held out, validation every epoch) and a
final run (6,000 images, the 10k-image test split every epoch) are trained for the two ``--epochs`` counts,
one after another in this process, and timed as process CPU time (one torch thread; on a shared machine
the wall time mostly measures the other jobs). The difference gives the cost of an epoch, the rest the fixed
cost of a run (data, teacher table, model); printed with the ratios the recipe's estimate uses (final epoch
over trial epoch, method over kd). The teacher has random weights: what a run costs does not depend on them.
Needs the Fashion-MNIST files where kdzoo finds them ($KDZOO_DATA, ...). Writes results/perf/tune_cost.json.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, timed_cpu, write_result  # noqa: E402

import kdzoo  # noqa: E402
from kdzoo.bench.recipe.entries import loss_requires  # noqa: E402
from kdzoo.bench.recipe.parse import load_recipe  # noqa: E402
from kdzoo.bench.execution.run import execute  # noqa: E402
from kdzoo.bench.plan import expand  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["ce", "kd", "dkd", "mlkd", "crld", "sdd"])
    p.add_argument("--epochs", nargs=2, type=int, default=[2, 10])
    args = p.parse_args()
    torch.set_num_threads(1)
    recipe = load_recipe(REPO / "recipes" / "fashion_mnist.yaml")
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher.pt"
        torch.manual_seed(0)
        torch.save(kdzoo.build_model("fmnist_teacher", num_classes=10).state_dict(), teacher)
        plan = expand(recipe, tmp)
        rows = []
        for e in plan.entries:
            spec = plan.specs[e.hash]
            if e.role != "student" or e.seed != 0 or e.label not in args.methods:
                continue
            if spec.teacher is not None:
                spec = replace(spec, teacher_ckpt=str(teacher), teacher_run=None)
            cost = {}
            for kind, holdout in (("trial", recipe.tune.val_size), ("final", 0.0)):
                cpu = []
                for epochs in args.epochs:
                    s = replace(spec, holdout=holdout, train=replace(spec.train, epochs=epochs))
                    cpu.append(timed_cpu(lambda: execute(s, None, progress=False))[1])
                per = (cpu[1] - cpu[0]) / (args.epochs[1] - args.epochs[0])
                cost[kind] = {"per_epoch": per, "fixed": cpu[0] - args.epochs[0] * per}
            rows.append({"student": e.student, "method": e.label, "requires": loss_requires(spec.method),
                         **{f"{k}_{x}": v[x] for k, v in cost.items() for x in ("per_epoch", "fixed")}})
            print(f"{e.student:16s} {e.label:8s} trial {cost['trial']['fixed']:5.2f} s + {cost['trial']['per_epoch']:.3f}"
                  f" s/epoch; final {cost['final']['fixed']:5.2f} s + {cost['final']['per_epoch']:.3f} s/epoch "
                  f"(x{cost['final']['per_epoch'] / cost['trial']['per_epoch']:.2f})", flush=True)
    for student in dict.fromkeys(r["student"] for r in rows):
        kd = next((r for r in rows if r["student"] == student and r["method"] == "kd"), None)
        if kd:
            ratios = ", ".join(f"{r['method']} {r['trial_per_epoch'] / kd['trial_per_epoch']:.2f}"
                               for r in rows if r["student"] == student)
            print(f"{student}: trial epoch cost relative to kd: {ratios}")
    path = write_result("tune_cost", {"epochs": args.epochs, "rows": rows}, env)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
