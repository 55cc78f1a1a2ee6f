"""MCLD hyperparameter sweep on Fashion-MNIST (issue 4): pick tau and the term weights.

Setting: the trained ``fmnist_teacher`` distils into ``fmnist_mlp`` on a data-limited
student side (a seeded ``--train-fraction`` of the training split), with a 5,000-image
validation split carved from the training split first. Configurations are *selected on
the validation top-1* (last epoch, mean over seeds); test top-1 is reported beside it.

Stage 1 is the grid tau x w (w_ins = w_sam = w_cat = w); stage 2 ablates the best stage-1
configuration (no category term, category term only, no target mask, no warm-up).
ce and kd train in the same cohort as references. Every seed's configurations train as
one cohort (same batches, same initial weights), so differences between configurations
are not data-order noise.

    python benchmarks/mcld_sweep.py                 # both stages, writes results/mcld_sweep/
    python benchmarks/mcld_sweep.py --stage 1 --epochs 1 --steps 3 --out /tmp/x   # smoke test

Finished cohorts are appended to ``runs.jsonl`` and skipped when the script is rerun.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEACHER_CKPT = REPO / "results" / "train_fashion_mnist" / "runs" / "teacher" / "model.pt"
TAUS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
WEIGHTS = (0.25, 0.5, 1.0, 2.0)


def ensure_teacher(path: Path) -> None:
    """The teacher checkpoint is gitignored: retrain it (same command as the foundation run) when missing."""
    if path.is_file():
        return
    print(f"teacher checkpoint {path} missing: training it (a few CPU minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "kdzoo", "train", "--student", "fmnist_teacher", "--epochs", "6",
                    "--lr", "0.05", "--out", str(path.parent)], check=True, cwd=REPO)


def mcld_args(tau: float, w: float, **extra) -> dict:
    """Every hyperparameter explicit, so the runs mean the same after the loss's defaults change."""
    return {"tau": tau, "ce_weight": 1.0, "w_ins": w, "w_sam": w, "w_cat": w, "warmup": 20,
            "target_mask": True, "normalize": "zscore", **extra}


def stage1_methods() -> list[tuple[str, str, dict]]:
    """(label, loss, kwargs) for the grid, plus the ce and kd references."""
    out = [("ce", "ce", {}), ("kd", "kd", {})]
    for tau in TAUS:
        for w in WEIGHTS:
            out.append((f"mcld tau={tau} w={w}", "mcld", mcld_args(tau, w)))
    return out


def stage2_methods(tau: float, w: float) -> list[tuple[str, str, dict]]:
    return [(f"mcld tau={tau} w={w} no-cat", "mcld", mcld_args(tau, w, w_cat=0.0)),
            (f"mcld tau={tau} w={w} cat-only", "mcld", mcld_args(tau, w, w_ins=0.0, w_sam=0.0)),
            (f"mcld tau={tau} w={w} no-mask", "mcld", mcld_args(tau, w, target_mask=False)),
            (f"mcld tau={tau} w={w} warmup=0", "mcld", mcld_args(tau, w, warmup=0))]


def run_cohort(methods, seed: int, args, log_path: Path, stage: int) -> None:
    from kdzoo.bench.execution.run import execute_cohort
    from kdzoo.bench.spec import RunSpec
    from kdzoo.engine import TrainConfig

    done = set()
    if log_path.is_file():
        done = {(r["label"], r["seed"], r["epochs_planned"]) for r in map(json.loads, log_path.read_text().splitlines())}
    todo = [m for m in methods if (m[0], seed, args.epochs) not in done]
    if not todo:
        return
    train = TrainConfig(epochs=args.epochs, device="cpu", steps_per_epoch=args.steps, cpu_threads=args.threads)
    specs = [RunSpec(dataset="fashion-mnist", student=args.student, method=loss, loss_kwargs=kw,
                     teacher="fmnist_teacher", teacher_ckpt=str(args.teacher), access="logits", seed=seed,
                     train=train, train_fraction=args.train_fraction, val_size=args.val_size)
             for _, loss, kw in todo]
    t0 = time.time()
    records = execute_cohort(specs, [None] * len(specs), progress=False, log=lambda _msg: None)
    wall = time.time() - t0
    with log_path.open("a") as f:
        for (label, loss, kw), spec, rec in zip(todo, specs, records):
            row = {"stage": stage, "label": label, "method": loss, "seed": seed, "epochs_planned": args.epochs,
                   "loss_kwargs": spec.loss_kwargs, "status": rec["status"], "val_top1": rec["val_top1"],
                   "test_top1": rec["top1"], "best_test_top1": rec["best_top1"],
                   "train_seconds": round(rec["train_seconds"], 1),
                   "config_hash": rec["config_hash"], "git_commit": rec["git_commit"], "device": rec["device"],
                   "cohort_wall_s": round(wall, 1)}
            f.write(json.dumps(row) + "\n")
    print(f"stage {stage} seed {seed}: {len(todo)} runs in {wall:.0f} s", flush=True)


def summarize(rows: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["label"], []).append(r)

    def stat(vals):
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        if not vals:
            return float("nan"), float("nan")
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    out = []
    for label, rs in groups.items():
        kw = rs[0]["loss_kwargs"]
        vm, vs = stat([r["val_top1"] for r in rs])
        tm, ts = stat([r["test_top1"] for r in rs])
        out.append({"stage": rs[0]["stage"], "label": label, "method": rs[0]["method"],
                    **{k: kw.get(k, "") for k in ("tau", "w_ins", "w_sam", "w_cat", "warmup", "target_mask")},
                    "seeds": len(rs), "finished": sum(r["status"] == "finished" for r in rs),
                    "val_top1_mean": round(vm, 2), "val_top1_std": round(vs, 2),
                    "test_top1_mean": round(tm, 2), "test_top1_std": round(ts, 2)})
    return out


def best_mcld(summary: list[dict]) -> dict:
    grid = [s for s in summary if s["stage"] == 1 and s["method"] == "mcld" and s["finished"] == s["seeds"]]
    return max(grid, key=lambda s: s["val_top1_mean"])


def write_csv(path: Path, rows: list[dict]) -> None:
    import csv
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=("1", "2", "all"), default="all")
    p.add_argument("--student", default="fmnist_mlp")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=None, help="cap on steps per epoch (smoke tests)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-fraction", type=float, default=0.1)
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--teacher", type=Path, default=TEACHER_CKPT)
    p.add_argument("--out", type=Path, default=REPO / "results" / "mcld_sweep")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is several times faster than 2 on a shared 2-core machine)")
    args = p.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    ensure_teacher(args.teacher)
    log_path = args.out / "runs.jsonl"
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.time()
    if args.stage in ("1", "all"):
        for seed in args.seeds:
            run_cohort(stage1_methods(), seed, args, log_path, 1)
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    rows = [r for r in rows if r["epochs_planned"] == args.epochs]
    rows = [r for r in rows if r["stage"] == 1]
    if args.stage in ("2", "all"):
        best = best_mcld(summarize(rows))
        ablations = stage2_methods(best["tau"], best["w_ins"])
        for seed in args.seeds:
            run_cohort(ablations, seed, args, log_path, 2)
        rows = [json.loads(line) for line in log_path.read_text().splitlines()]
        # stage 2 of an earlier, smaller grid (another best) stays in runs.jsonl only
        keep = {label for label, _, _ in ablations}
        rows = [r for r in rows if r["epochs_planned"] == args.epochs and (r["stage"] == 1 or r["label"] in keep)]
    write_csv(args.out / "runs.csv", [{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in r.items()}
                                      for r in rows])
    summary = sorted(summarize(rows), key=lambda s: (s["stage"], -s["val_top1_mean"]))
    write_csv(args.out / "summary.csv", summary)
    meta = {"command": " ".join(["python", *sys.argv]), "started_utc": started,
            "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_s_this_invocation": round(time.time() - t0, 1), "torch_threads": args.threads,
            "load_average_end": list(os.getloadavg()),
            "git_commit": rows[0]["git_commit"], "device": rows[0]["device"], "best_stage1": best_mcld(summary)}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    for s in summary:
        print(f"{s['stage']} {s['label']:<34} val {s['val_top1_mean']:6.2f} ± {s['val_top1_std']:4.2f}   "
              f"test {s['test_top1_mean']:6.2f} ± {s['test_top1_std']:4.2f}  ({s['finished']}/{s['seeds']})")


if __name__ == "__main__":
    main()
