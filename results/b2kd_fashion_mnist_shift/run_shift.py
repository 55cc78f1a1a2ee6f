"""Run the distribution-shift B2KD recipe through ``kdzoo.bench.run.execute`` (stop-gap).

    python results/b2kd_fashion_mnist_shift/run_shift.py recipes/b2kd_fashion_mnist_shift.yaml \
        --teacher-ckpt results/b2kd_fashion_mnist/runs/<teacher hash>/model.pt --workers 2

``kdzoo bench``'s recipe schema does not take ``student_data.student_shift`` yet, so this script
expands the recipe the way the bench does (one run per method x access x seed; ``ce`` with hidden
labels runs with access ``label``), sets ``RunSpec.student_shift``, and executes each run with
``kdzoo.bench.run.execute`` into ``OUT/runs/<config hash>/`` with a ``plan.json`` in the bench's
format (so ``results/b2kd_fashion_mnist/summarize.py`` reads it). The teacher is the checkpoint the
main recipe's sweep trained: the same teacher spec, trained once. Finished runs are skipped.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
from pathlib import Path

import yaml


def specs(recipe: dict, teacher_ckpt: str):
    import kdzoo
    from kdzoo.bench.run import RunSpec
    from kdzoo.engine import TrainConfig
    from kdzoo.registry import LOSSES

    sd = recipe.get("student_data", {})
    (pair,) = recipe["pairs"]
    out = []
    for seed in recipe["seeds"]:
        for m in recipe["methods"]:
            m = {"name": m} if isinstance(m, str) else m
            alone = getattr(LOSSES.entry(m["name"]).factory, "requires", "logits") == "none"
            levels = ["label"] if alone else m.get("access", recipe.get("access", ["logits"]))
            kwargs = {k: v for k, v in kdzoo.LOSSES.entry(m["name"]).hyperparameters().items()}
            kwargs.update(m.get("args", {}))
            for access in levels:
                spec = RunSpec(dataset=recipe["dataset"], student=pair["student"], method=m["name"],
                               loss_kwargs=kwargs, teacher=pair["teacher"], teacher_ckpt=teacher_ckpt,
                               access=access, seed=seed, train=TrainConfig(**{**recipe["train"], "seed": seed}),
                               train_fraction=sd.get("train_fraction", 1.0), hide_labels=sd.get("hide_labels", False),
                               student_shift=sd.get("student_shift", ""))
                entry = {"access": access, "hash": spec.config_hash(), "label": m.get("label", m["name"]),
                         "method": m["name"], "role": "student", "seed": seed, "student": pair["student"],
                         "teacher": pair["teacher"], "teacher_hash": None, "teacher_model": pair["teacher"]}
                out.append((entry, spec))
    return out


def _run(job):
    import torch
    torch.set_num_threads(1)
    from kdzoo.bench.run import RunSpec, execute
    spec_dict, run_dir, cache = job
    if (Path(run_dir) / "result.json").is_file():
        return run_dir, "skipped"
    r = execute(RunSpec.from_dict(spec_dict), Path(run_dir), cache_dir=cache, progress=False)
    return run_dir, f"{r['status']} top1={r['top1']:.2f} queries={r['teacher_queries']}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("recipe")
    p.add_argument("--teacher-ckpt", required=True)
    p.add_argument("--out", default=None)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    recipe = yaml.safe_load(Path(a.recipe).read_text())
    out = Path(a.out or f"results/{recipe['name']}").absolute()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    plan = specs(recipe, str(Path(a.teacher_ckpt).absolute()))
    (out / "plan.json").write_text(json.dumps({"dataset": recipe["dataset"], "description": recipe["description"],
                                               "entries": [e for e, _ in plan], "recipe": recipe["name"]}, indent=2))
    (out / "recipe.yaml").write_text(Path(a.recipe).read_text())
    # MEKD first: its generators take longest
    jobs = sorted(((s.to_dict(), str(out / "runs" / e["hash"]), str(out / "cache")) for e, s in plan),
                  key=lambda j: j[0]["method"] != "mekd")
    with mp.get_context("spawn").Pool(a.workers) as pool:
        for run_dir, status in pool.imap_unordered(_run, jobs):
            print(Path(run_dir).name, status, flush=True)


if __name__ == "__main__":
    main()
