"""Two studies of a black-box (B2KD) recipe beside its table (issue 14):

- **convergence**: MEKD's top-1 against its generator steps (``gen_steps``) and the student's
  schedule (epochs x generated batches per epoch), soft and hard, with the wall time and the teacher
  queries of each point;
- **queries**: top-1 against teacher queries for every black-box method at equal student-phase
  budgets: the real-image baselines (methods that query the teacher on the student side's images)
  trained on fractions f of those images (``train_fraction`` x f: the teacher is asked once per
  image, so f sets the queries exactly); the generator-based methods (mekd, gen-kd-soft,
  gen-ce-hard: a loss with a preparation stage) at the recipe's schedule and, with ``pool: N``, on
  N = f x the student side's images generated once and labelled once (plus the generator's queries,
  counted in the total). An entry whose args set ``pool`` already is run as it is.

Every point is an ordinary run (a ``RunSpec`` with its hash) in ``OUT/runs/<hash>/``, the same store
``kdzoo bench`` uses (OUT defaults to the bench's, ``runs/<recipe name>``): a point the table already
ran is not run again, the sweep's teacher is shared, generators are cached in ``OUT/cache`` and
reused, and an interrupted study resumes. Scripts: benchmarks/mekd_convergence.py,
benchmarks/b2kd_queries.py.
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

from kdzoo.engine import runfolder
from kdzoo.engine.terminal import say
from kdzoo.errors import ConfigError, KdzooError
from kdzoo.losses.base import has_preparation
from kdzoo.registry import LOSSES
from kdzoo.bench.execution.run import execute
from kdzoo.bench.plan import STUDENT_ROLE, Plan, estimate, expand, teacher_spec, train_images
from kdzoo.bench.recipe.parse import load_recipe
from kdzoo.bench.recipe.types import Recipe
from kdzoo.bench.runner import default_out
from kdzoo.bench.spec import RunSpec

MEKD = "mekd"
COLUMNS = ("study", "label", "method", "access", "private_images", "seed", "gen_steps", "epochs", "steps_per_epoch",
           "student_steps", "query_fraction", "pool", "top1", "best_top1", "teacher_queries", "prepare_queries",
           "student_queries", "generator_seconds", "student_seconds", "wall_seconds", "status", "hash")


@dataclass
class StudyPoint:
    study: str                 # convergence | queries
    label: str                 # the recipe's method label
    access: str
    seed: int
    spec: RunSpec
    gen_steps: int | None = None
    query_fraction: float = 1.0
    pool: int = 0              # images generated and labelled once (0: fresh ones every step)


def generated(spec: RunSpec) -> bool:
    """Whether the run's student learns from generated images (its loss has a preparation stage):
    then no image of the student side is sent to the teacher."""
    return has_preparation(LOSSES.entry(spec.method).factory)


def _setting(spec: RunSpec, name: str) -> Any:
    """A loss setting of the run: its recipe value, else the registered default."""
    return {**LOSSES.entry(spec.method).hyperparameters(), **spec.loss_kwargs}.get(name)

def _students(plan: Plan, seeds: list[int] | None) -> list[tuple[Any, RunSpec]]:
    return [(e, plan.specs[e.hash]) for e in plan.entries
            if e.role == STUDENT_ROLE and (seeds is None or e.seed in seeds)]


def convergence_points(plan: Plan, gen_steps: list[int], schedules: list[tuple[int, int]],
                       seeds: list[int] | None = None) -> list[StudyPoint]:
    """Every MEKD entry of the plan at each generator length x student schedule (epochs, batches/epoch)."""
    points = []
    for e, base in _students(plan, seeds):
        if base.method != MEKD or _setting(base, "pool"):
            continue                          # MEKD's own schedule only (a pooled entry is a budget point)
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


def query_points(plan: Plan, fractions: list[float], seeds: list[int] | None = None,
                 sizes: dict[str, int] | None = None) -> list[StudyPoint]:
    """Real-image baselines at fractions of the student side's images; generator-based entries as the
    recipe has them and pooled at the same numbers of images (``sizes``: training-split sizes of datasets
    kdzoo does not know, as in ``sweep.train_images``)."""
    if any(not 0 < f <= 1 for f in fractions):
        raise ConfigError(f"query fractions must be in (0, 1], got {fractions}")
    points = []
    for e, base in _students(plan, seeds):
        if base.teacher is None:
            continue                          # the student alone asks nothing: not on a queries axis
        if generated(base):
            gen_steps, pool = _setting(base, "gen_steps"), int(_setting(base, "pool") or 0)
            points.append(StudyPoint("queries", e.label, e.access, e.seed, base, gen_steps=gen_steps, pool=pool))
            if pool:
                continue                      # the recipe fixed its pool: one point
            n = train_images(base, sizes)
            if n is None:
                raise ConfigError(f"the size of dataset '{base.dataset}' is unknown: pass sizes")
            for f in fractions:
                kw = {**base.loss_kwargs, "pool": max(1, round(f * n))}
                points.append(StudyPoint("queries", e.label, e.access, e.seed, replace(base, loss_kwargs=kw),
                                         gen_steps=gen_steps, query_fraction=float(f), pool=kw["pool"]))
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
    """Run (or reuse) every point in ``out/runs``; return one row per point (``COLUMNS``). Generators are
    cached in ``cache_dir``, by default ``out/cache`` (the bench's cache for the same OUT)."""
    runs = Path(out).absolute() / "runs"
    cache_dir = str(cache_dir or Path(out).absolute() / "cache")
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
    gen_file = run_dir / runfolder.PREPARED
    gen_seconds = float(json.loads(gen_file.read_text()).get("seconds", 0.0)) if gen_file.is_file() else 0.0
    if p.pool:
        per_epoch = min(math.ceil(p.pool / p.spec.train.batch_size), p.spec.train.steps_per_epoch or p.pool)
    elif generated(p.spec):
        per_epoch = p.spec.train.steps_per_epoch or int(_setting(p.spec, "steps_per_epoch"))
    else:
        per_epoch = (estimate(p.spec)[1] or 0) // max(p.spec.train.epochs, 1)
    student_seconds = float(r.get("train_seconds", 0.0))
    queries, prepared = r.get("teacher_queries"), r.get("prepare_queries") or 0
    return {"study": p.study, "label": p.label, "method": p.spec.method, "access": p.access,
            "private_images": "no" if generated(p.spec) else "yes", "seed": p.seed, "gen_steps": p.gen_steps or "",
            "epochs": p.spec.train.epochs, "steps_per_epoch": per_epoch,
            "student_steps": per_epoch * p.spec.train.epochs, "query_fraction": p.query_fraction, "pool": p.pool,
            "top1": r.get("top1", math.nan), "best_top1": r.get("best_top1", math.nan),
            "teacher_queries": "" if queries is None else queries, "prepare_queries": prepared,
            "student_queries": "" if queries is None else int(queries) - int(prepared),
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


def _phase(r: dict[str, Any]) -> str:
    """How a row's student met the teacher: real images, a generated pool, or generated images every step."""
    if r["private_images"] == "yes":
        return "real images"
    return "pool" if int(r["pool"] or 0) else "every step"


QUERY_AXES = (("teacher_queries", "total teacher queries (the generator's included)"),
              ("student_queries", "teacher queries of the student phase"))


def queries_figure(rows: list[dict[str, Any]], convergence: list[dict[str, Any]] | None = None, title: str = ""):
    """Top-1 (mean over seeds) against the total teacher queries (left, with MEKD's convergence points) and
    against the student phase's queries (right): a line per method and phase, real-image baselines solid,
    generated pools dashed, generated images every step one star."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    rows = [{**r, "phase": _phase(r)} for r in rows]
    colors = {k: f"C{i}" for i, k in enumerate(sorted({r["label"] for r in rows}))}
    style = {"real images": ("o", "-"), "pool": ("s", "--"), "every step": ("*", "none")}
    for ax, (x, xlabel) in zip(axes, QUERY_AXES):
        for (label, phase), pts in sorted(_mean_by(rows, ("label", "phase"), x).items()):
            marker, line = style[phase]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, linestyle=line, color=colors[label],
                    markersize=10 if marker == "*" else 6, label=f"{label} ({phase})")
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
    for (label, epochs, per_epoch), pts in sorted(_mean_by(convergence or [], ("label", "epochs", "steps_per_epoch"),
                                                           "teacher_queries").items()):
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], marker="x", linestyle=":", color="grey",
                     label=f"{label} convergence, student {epochs} x {per_epoch} (seed 0)")
    axes[0].set_ylabel("test top-1 % (mean over seeds)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title or "top-1 against teacher queries")
    fig.tight_layout()
    return fig


def plot(rows: list[dict[str, Any]], path: str | Path, study: str, title: str = "",
         convergence: list[dict[str, Any]] | None = None) -> Path:
    """convergence: top-1 against generator steps, a line per (method, student schedule); queries:
    ``queries_figure`` (with ``convergence``, the convergence study's rows, on its left panel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if study == "convergence":
        fig, ax = plt.subplots(figsize=(7, 4.5))
        lines = _mean_by(rows, ("label", "epochs", "steps_per_epoch"), "gen_steps")
        for k, pts in sorted(lines.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=f"{k[0]}, student {k[1]} x {k[2]} steps")
        ax.set_xscale("log")
        ax.set_xlabel("generator steps (gen_steps)")
        ax.set_ylabel("test top-1 % (mean over seeds)")
        ax.set_title(title or "convergence (gen_steps)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
    else:
        fig = queries_figure(rows, convergence, title)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(rows: list[dict[str, Any]]) -> str:
    """The queries study as a table: method, access, whether it sends the student side's images to the
    teacher, student-phase and total queries (means over seeds), top-1 mean ± std (sample std; 0 with one
    seed) and top-1 per 1,000 total queries."""
    lines = ["| method | access | private images to teacher | student-phase queries | total queries "
             "| top-1 % (mean ± std) | top-1 per 1k queries | seeds |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["status"] == runfolder.FINISHED:
            groups.setdefault((r["label"], r["access"], r["private_images"], _phase(r), int(r["student_queries"])),
                              []).append(r)

    def order(item: tuple[tuple, list]) -> tuple:   # per method: budgets up, generated every step (MEKD's own) last
        label, _, _, phase, budget = item[0]
        return label, phase == "every step", budget

    for (label, access, private, _, _), rs in sorted(groups.items(), key=order):
        q = sum(int(r["teacher_queries"]) for r in rs) / len(rs)
        student = sum(int(r["student_queries"]) for r in rs) / len(rs)
        top1 = [float(r["top1"]) for r in rs]
        mean = sum(top1) / len(top1)
        std = statistics.stdev(top1) if len(top1) > 1 else 0.0
        lines.append(f"| {label} | {access} | {private} | {student:,.0f} | {q:,.0f} | {mean:.2f} ± {std:.2f} "
                     f"| {1000 * mean / q:.2f} | {len(rs)} |")
    return "\n".join(lines) + "\n"


def study_arguments(ap: argparse.ArgumentParser, repo: Path) -> argparse.ArgumentParser:
    """The arguments both study scripts take (recipe, seeds, workers, run store, cache, data); ``repo`` is
    the checkout the scripts run from (default recipe: recipes/b2kd_fashion_mnist.yaml)."""
    ap.add_argument("recipe", nargs="?", default=str(repo / "recipes" / "b2kd_fashion_mnist.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the recipe's seeds")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=None, help="run store and output folder (default: the bench's, "
                                                "runs/<recipe name>)")
    ap.add_argument("--cache-dir", default=None, help="generator cache (default: OUT/cache, the bench's)")
    ap.add_argument("--data-root", default=None)
    return ap


def open_study(args: argparse.Namespace, repo: Path) -> tuple[Recipe, Path, Plan]:
    """The recipe, the output folder (default: the bench's, ``runs/<recipe name>``) and the sweep's plan over it."""
    recipe = load_recipe(args.recipe)
    out = Path(args.out) if args.out else default_out(recipe)
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


__all__ = ["COLUMNS", "StudyPoint", "convergence_points", "generated", "markdown", "open_study", "plot", "query_points",
           "queries_figure", "run_points", "run_script", "study_arguments", "write_csv"]
