"""Two studies of a black-box (B2KD) recipe beside its table (issue 14):

- **convergence**: MEKD's top-1 against its generator steps (``gen_steps``) and the student's
  schedule (epochs x generated batches per epoch), soft and hard, with the wall time and the teacher
  queries of each point;
- **queries**: top-1 against teacher queries for every black-box method: the baselines (methods
  that query the teacher on the student side's images) trained on fractions of those images
  (``train_fraction`` x f: the teacher is asked once per image, so f sets the queries exactly),
  MEKD at the recipe's schedule (its generator's and student's queries, as counted by the run).

Every point is an ordinary run (a ``RunSpec`` with its hash) in ``OUT/runs/<hash>/``, the same store
``kdzoo bench`` uses: a point the table already ran is not run again, the sweep's teacher is shared,
and an interrupted study resumes. Scripts: benchmarks/mekd_convergence.py, benchmarks/b2kd_queries.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..engine import runfolder
from ..engine.terminal import say
from ..errors import ConfigError, KdzooError
from .execution.run import execute
from .plan import STUDENT_ROLE, Plan, estimate, expand, teacher_spec
from .recipe.parse import load_recipe
from .recipe.types import Recipe
from .spec import RunSpec

MEKD = "mekd"
COLUMNS = ("study", "label", "access", "seed", "gen_steps", "epochs", "steps_per_epoch", "student_steps",
           "query_fraction", "top1", "best_top1", "teacher_queries", "prepare_queries", "generator_seconds",
           "student_seconds", "wall_seconds", "status", "hash")


@dataclass
class StudyPoint:
    study: str                 # convergence | queries
    label: str                 # the recipe's method label
    access: str
    seed: int
    spec: RunSpec
    gen_steps: int | None = None
    query_fraction: float = 1.0


def _students(plan: Plan, seeds: list[int] | None) -> list[tuple[Any, RunSpec]]:
    return [(e, plan.specs[e.hash]) for e in plan.entries
            if e.role == STUDENT_ROLE and (seeds is None or e.seed in seeds)]


def convergence_points(plan: Plan, gen_steps: list[int], schedules: list[tuple[int, int]],
                       seeds: list[int] | None = None) -> list[StudyPoint]:
    """Every MEKD entry of the plan at each generator length x student schedule (epochs, batches/epoch)."""
    points = []
    for e, base in _students(plan, seeds):
        if base.method != MEKD:
            continue
        for g in gen_steps:
            for epochs, per_epoch in schedules:
                kw = {**base.loss_kwargs, "gen_steps": int(g), "steps_per_epoch": int(per_epoch)}
                # the loss's steps_per_epoch sets the schedule only when the train block sets none
                train = replace(base.train, epochs=int(epochs), steps_per_epoch=None)
                spec = replace(base, loss_kwargs=kw, train=train)
                points.append(StudyPoint("convergence", e.label, e.access, e.seed, spec, gen_steps=int(g)))
    if not points:
        raise ConfigError(f"recipe '{plan.recipe}' has no mekd method (or none for these seeds): nothing to study")
    return points


def query_points(plan: Plan, fractions: list[float], seeds: list[int] | None = None) -> list[StudyPoint]:
    """Baselines at fractions of the student side's images; MEKD entries as the recipe has them."""
    if any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(f"query fractions must be in (0, 1], got {fractions}")
    points = []
    for e, base in _students(plan, seeds):
        if base.teacher is None:
            continue                          # the student alone asks nothing: not on a queries axis
        if base.method == MEKD:
            points.append(StudyPoint("queries", e.label, e.access, e.seed, base,
                                     gen_steps=int(base.loss_kwargs["gen_steps"])))
            continue
        for f in fractions:
            spec = replace(base, train_fraction=base.train_fraction * f) if f < 1 else base
            points.append(StudyPoint("queries", e.label, e.access, e.seed, spec, query_fraction=float(f)))
    return points


def _run_one(job: tuple[RunSpec, str, str | None, str | None]) -> dict[str, Any]:
    spec, run_dir, cache_dir, data_root = job
    done = runfolder.read_result(run_dir)
    if done and done.get("status") == runfolder.FINISHED:
        return done
    return execute(spec, Path(run_dir), cache_dir=cache_dir, data_root=data_root, progress=False)


def _teacher_ready(plan: Plan, recipe: Recipe, points: list[StudyPoint], runs: Path, **kw: Any) -> None:
    """Train the sweep's teacher(s) these points need, unless the store has them already."""
    names = {e.teacher: e.teacher_hash for e in plan.entries if e.role == STUDENT_ROLE and e.teacher_hash}
    needed = {p.spec.teacher_run for p in points if p.spec.teacher_run}
    for name, h in names.items():
        if h in needed:
            _run_one((teacher_spec(recipe, name), str(runs / h), kw.get("cache_dir"), kw.get("data_root")))


def run_points(recipe: Recipe, points: list[StudyPoint], out: str | Path, *, workers: int = 1,
               cache_dir: str | None = None, data_root: str | None = None) -> list[dict[str, Any]]:
    """Run (or reuse) every point in ``out/runs``; return one row per point (``COLUMNS``)."""
    runs = Path(out).absolute() / "runs"
    plan = expand(recipe, out)
    _teacher_ready(plan, recipe, points, runs, cache_dir=cache_dir, data_root=data_root)
    jobs = [(p.spec, str(runs / p.spec.config_hash()), cache_dir, data_root) for p in points]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_run_one, jobs))
    else:
        results = [_run_one(j) for j in jobs]
    return [_row(p, r, runs / p.spec.config_hash()) for p, r in zip(points, results)]


def _row(p: StudyPoint, r: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    gen_file = run_dir / "mekd_generator.json"
    gen_seconds = float(json.loads(gen_file.read_text()).get("seconds", 0.0)) if gen_file.is_file() else 0.0
    if p.spec.method == MEKD:
        per_epoch = p.spec.train.steps_per_epoch or int(p.spec.loss_kwargs["steps_per_epoch"])
    else:
        per_epoch = (estimate(p.spec)[1] or 0) // max(p.spec.train.epochs, 1)
    student_seconds = float(r.get("train_seconds", 0.0))
    return {"study": p.study, "label": p.label, "access": p.access, "seed": p.seed, "gen_steps": p.gen_steps or "",
            "epochs": p.spec.train.epochs, "steps_per_epoch": per_epoch,
            "student_steps": per_epoch * p.spec.train.epochs, "query_fraction": p.query_fraction,
            "top1": r.get("top1", math.nan), "best_top1": r.get("best_top1", math.nan),
            "teacher_queries": r.get("teacher_queries", ""), "prepare_queries": r.get("prepare_queries", ""),
            "generator_seconds": round(gen_seconds, 2), "student_seconds": round(student_seconds, 2),
            "wall_seconds": round(gen_seconds + student_seconds, 2), "status": r.get("status", ""),
            "hash": p.spec.config_hash()}


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def _mean_by(rows: list[dict[str, Any]], key: tuple[str, ...], x: str) -> dict[tuple, list[tuple[float, float]]]:
    """{key values: [(x, mean top1 over seeds), ...] sorted by x}."""
    acc: dict[tuple, dict[float, list[float]]] = {}
    for r in rows:
        if r["status"] == runfolder.FINISHED:
            acc.setdefault(tuple(r[k] for k in key), {}).setdefault(float(r[x]), []).append(float(r["top1"]))
    return {k: sorted((xv, sum(v) / len(v)) for xv, v in d.items()) for k, d in acc.items()}


def plot(rows: list[dict[str, Any]], path: str | Path, study: str, title: str = "") -> Path:
    """convergence: top-1 against generator steps, a line per (method, student schedule);
    queries: top-1 against teacher queries (log scale), a line per method. Means over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if study == "convergence":
        lines, x, xlabel = _mean_by(rows, ("label", "epochs", "steps_per_epoch"), "gen_steps"), "gen_steps", \
            "generator steps (gen_steps)"
        names = {k: f"{k[0]}, student {k[1]} x {k[2]} steps" for k in lines}
    else:
        lines, x, xlabel = _mean_by(rows, ("label",), "teacher_queries"), "teacher_queries", "teacher queries (images)"
        names = {k: k[0] for k in lines}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for k, pts in sorted(lines.items()):
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=names[k])
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test top-1 % (mean over seeds)")
    ax.set_title(title or f"{study} ({x})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(rows: list[dict[str, Any]]) -> str:
    """The queries study as a table: method, access, fraction, queries (mean over seeds), top-1 mean ± std
    (sample std; 0 with one seed) and top-1 per 1,000 queries."""
    lines = ["| method | access | query fraction | teacher queries | top-1 % (mean ± std) | top-1 per 1k queries "
             "| seeds |",
             "|---|---|---:|---:|---:|---:|---:|"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == runfolder.FINISHED:
            groups.setdefault((r["label"], r["access"], r["query_fraction"]), []).append(r)
    for (label, access, f), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        q = sum(int(r["teacher_queries"]) for r in rs) / len(rs)
        top1 = [float(r["top1"]) for r in rs]
        mean = sum(top1) / len(top1)
        std = statistics.stdev(top1) if len(top1) > 1 else 0.0
        lines.append(f"| {label} | {access} | {f:g} | {q:,.0f} | {mean:.2f} ± {std:.2f} | {1000 * mean / q:.2f} "
                     f"| {len(rs)} |")
    return "\n".join(lines) + "\n"


def study_arguments(ap: argparse.ArgumentParser, repo: Path) -> argparse.ArgumentParser:
    """The arguments both study scripts take (recipe, seeds, workers, run store, cache, data); ``repo`` is
    the checkout the scripts run from (default recipe: recipes/b2kd_fashion_mnist.yaml)."""
    ap.add_argument("recipe", nargs="?", default=str(repo / "recipes" / "b2kd_fashion_mnist.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the recipe's seeds")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="run store and output folder (default: results/<recipe name>)")
    ap.add_argument("--cache-dir", default=None, help="generator cache (give the bench's OUT/cache to share it)")
    ap.add_argument("--data-root", default=None)
    return ap


def open_study(args: argparse.Namespace, repo: Path) -> tuple[Recipe, Path, Plan]:
    """The recipe, the output folder (default ``repo/results/<recipe name>``) and the sweep's plan over it."""
    recipe = load_recipe(args.recipe)
    out = Path(args.out or repo / "results" / recipe.name)
    return recipe, out, expand(recipe, out)


def run_script(main: Callable[[], None], prog: str) -> int:
    """Run a study script's ``main``: bad input is one line on stderr (exit 2), Ctrl-C says how to resume
    (finished runs are in the run store; exit 130), as ``kdzoo`` itself does."""
    try:
        main()
        return 0
    except KdzooError as exc:
        say(f"{prog}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", stderr=True,
            problem=True)
        return 2
    except KeyboardInterrupt:
        say(f"{prog}: interrupted; finished runs are kept and the same command resumes", stderr=True)
        return 130


__all__ = ["COLUMNS", "StudyPoint", "convergence_points", "markdown", "open_study", "plot", "query_points",
           "run_points", "run_script", "study_arguments", "write_csv"]
