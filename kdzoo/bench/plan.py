"""Expand a recipe into runs: teachers first, then pairs x methods x access x seeds.

Each run is a fully resolved ``RunSpec`` identified by its ``config_hash()``.
A *plan* also keeps one entry per leaderboard row (pair, method label, access,
seed -> run hash): a run that does not depend on the teacher (the student
alone, ``ce``) is one run shared by every pair with that student and seed.

Runs that differ only in their loss can train as a *cohort* (in lockstep on the
same batches, one teacher forward per batch; results equal solo training).
Losses that declare a preparation stage always train alone.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data import train_size
from ..engine import TrainConfig
from ..engine.runfolder import MODEL
from ..losses.base import DistillLoss, has_preparation
from ..registry import LOSSES
from .recipe.entries import loss_requires
from .recipe.types import Recipe, name_problem
from .spec import RunSpec

TEACHER_ROLE, STUDENT_ROLE = "teacher", "student"



@dataclass
class PlanEntry:
    """One leaderboard row: which run answers (pair, method, access, seed)."""
    role: str                 # teacher | student
    teacher: str              # teacher name (key of the recipe's `teachers`)
    teacher_model: str
    student: str              # student model (the teacher's model for a teacher row)
    method: str               # loss name
    label: str                # method label shown in tables
    access: str               # teacher access, "none" for the student alone
    seed: int
    hash: str                 # the run's config hash
    teacher_hash: str | None = None   # the teacher run this run waits for (teachers trained by the sweep)


@dataclass
class Plan:
    recipe: str
    description: str
    dataset: str
    metric: str
    entries: list[PlanEntry]
    specs: dict[str, RunSpec]                         # hash -> spec, every distinct run
    reference: list[dict[str, Any]] = field(default_factory=list)

    def hashes(self, role: str | None = None) -> list[str]:
        """Distinct run hashes in plan order (teachers first)."""
        seen: dict[str, None] = {}
        for e in self.entries:
            if role is None or e.role == role:
                seen.setdefault(e.hash, None)
        return list(seen)

    def depends_on(self) -> dict[str, str]:
        """run hash -> hash of the teacher run it needs."""
        return {e.hash: e.teacher_hash for e in self.entries if e.teacher_hash and e.role == STUDENT_ROLE}

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "description": self.description, "dataset": self.dataset,
                "metric": self.metric, "entries": [asdict(e) for e in self.entries],
                "specs": {h: s.to_dict() for h, s in self.specs.items()}, "reference": self.reference}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        entries = [PlanEntry(**e) for e in d["entries"]]
        for e in entries:   # a hand-edited plan.json must not put markup or separators into the tables
            for what, name in (("label", e.label), ("teacher", e.teacher)):
                if name_problem(str(name)):
                    raise ValueError(f"{what} {name!r} {name_problem(str(name))}")
        return cls(recipe=d["recipe"], description=d.get("description", ""), dataset=d["dataset"],
                   metric=d.get("metric", "top1"), entries=entries,
                   specs={h: RunSpec.from_dict(s) for h, s in d.get("specs", {}).items()},
                   reference=list(d.get("reference", [])))


def resolved_loss_kwargs(loss: str, args: dict[str, Any]) -> dict[str, Any]:
    """The loss's defaults with ``args`` on top: the values a run really uses (and so hashes)."""
    entry = LOSSES.entry(loss)
    out: dict[str, Any] = {}
    try:
        params = inspect.signature(entry.factory).parameters.values()
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty and p.name != "self":
            out[p.name] = p.default
    out.update(entry.defaults)
    out.update(args)
    # options a loss added after runs were hashed (``hashed_when_set``: name -> default) are left out
    # at their default, so the runs made before they existed keep their hashes
    for name, default in getattr(entry.factory, "hashed_when_set", {}).items():
        if name in out and out[name] == default and type(out[name]) is type(default):
            del out[name]
    return out


def teacher_spec(recipe: Recipe, name: str, device: str = "auto", log: str | None = None) -> RunSpec:
    t = recipe.teachers[name]
    cfg = TrainConfig(**{**t.train, "seed": t.seed, "device": device, **_log(log)})
    return RunSpec(dataset=recipe.dataset, student=t.model, method="ce", loss_kwargs=resolved_loss_kwargs("ce", {}),
                   teacher=None, teacher_ckpt=None, access="none", seed=t.seed, train=cfg, augment=t.augment)


def _log(log: str | None) -> dict[str, str]:
    return {} if log is None else {"log": log}


def expand(recipe: Recipe, out: str | Path, device: str = "auto", log: str | None = None) -> Plan:
    """All runs of a recipe whose run store is ``out`` (teachers trained by the sweep live there too).
    ``device`` and ``log`` (when given) replace the recipe's: neither is part of a run's hash."""
    specs: dict[str, RunSpec] = {}
    entries: list[PlanEntry] = []
    teacher_runs: dict[str, str] = {}          # teacher name -> run hash (trained by the sweep)

    used = list(dict.fromkeys(p.teacher for p in recipe.pairs))
    for name in used:
        t = recipe.teachers[name]
        if t.ckpt is not None:
            continue
        spec = teacher_spec(recipe, name, device, log)
        h = spec.config_hash()
        specs[h] = spec
        teacher_runs[name] = h
        entries.append(PlanEntry(TEACHER_ROLE, name, t.model, t.model, "ce", TEACHER_ROLE, "none", t.seed, h))

    sd = recipe.student_data
    for seed in recipe.seeds:
        for pair in recipe.pairs:
            t = recipe.teachers[pair.teacher]
            t_run = teacher_runs.get(pair.teacher)
            # relative to the output folder: plan.json names no path of the machine that wrote it
            ckpt = f"runs/{t_run}/{MODEL}" if t_run else t.ckpt
            for m in recipe.methods:
                if m.label in pair.skip:
                    continue
                cfg = TrainConfig(**{**recipe.student_train(pair, m), "seed": seed, "device": device, **_log(log)})
                kwargs = resolved_loss_kwargs(m.loss, {**m.args, **pair.method_args.get(m.label, {})})
                alone = loss_requires(m.loss, kwargs) == "none"
                if alone and not sd.hide_labels:
                    levels = ["none"]
                elif alone:
                    levels = ["label"]        # pseudo-labels: only the teacher's top-1 is used
                else:
                    levels = recipe.access_for(m)
                for access in levels:
                    uses_teacher = access != "none"
                    spec = RunSpec(dataset=recipe.dataset, student=pair.student, method=m.loss, loss_kwargs=kwargs,
                                   teacher=t.model if uses_teacher else None,
                                   teacher_ckpt=ckpt if uses_teacher else None, access=access,
                                   teacher_budget=sd.teacher_budget if uses_teacher else None, seed=seed,
                                   train=replace(cfg), train_fraction=sd.train_fraction, hide_labels=sd.hide_labels,
                                   val_size=sd.val_size, augment=sd.augment, student_shift=sd.student_shift,
                                   teacher_run=t_run if uses_teacher else None)
                    h = spec.config_hash()
                    specs.setdefault(h, spec)
                    entries.append(PlanEntry(STUDENT_ROLE, pair.teacher, t.model, pair.student, m.loss, m.label,
                                             access, seed, h, t_run if uses_teacher else None))
    # a teacher no run needs (e.g. only the student alone is benchmarked) is not trained
    needed = {e.teacher_hash for e in entries if e.teacher_hash}
    entries = [e for e in entries if e.role != TEACHER_ROLE or e.hash in needed]
    specs = {h: s for h, s in specs.items() if h in {e.hash for e in entries}}
    reference = [asdict(r) for r in recipe.reference]
    return Plan(recipe=recipe.name, description=recipe.description, dataset=recipe.dataset, metric=recipe.metric,
                entries=entries, specs=specs, reference=reference)


def can_share_cohort(spec: RunSpec) -> bool:
    """Only losses without a preparation stage may train in lockstep with others."""
    factory = LOSSES.entry(spec.method).factory
    return isinstance(factory, type) and issubclass(factory, DistillLoss) and not has_preparation(factory)


def unit_phases(plan: Plan, hashes: list[str] | None = None, cohort: str = "auto") -> list[list[list[str]]]:
    """The units of work a sweep trains ``hashes`` (default: every run of the plan) in, phase by phase: first
    each teacher the sweep trains, alone; then the other runs, grouped by ``make_units``."""
    hashes = plan.hashes() if hashes is None else hashes
    teachers = set(plan.hashes(TEACHER_ROLE))
    return [[[h] for h in hashes if h in teachers], make_units(plan.specs, [h for h in hashes if h not in teachers],
                                                                cohort)]


def make_units(specs: dict[str, RunSpec], hashes: list[str], cohort: str = "auto") -> list[list[str]]:
    """Group runs into units of work: one run each, or cohorts of runs with the same ``cohort_key``.

    The key holds the whole TrainConfig: the trainer steps every member with one config (one optimizer
    kind, schedule and budget), so ``kd`` and ``kd`` trained with DOT land in different units, while
    ``kd+dot`` and ``dkd+dot`` may share one."""
    if cohort not in ("auto", "off"):
        raise ValueError(f"cohort must be 'auto' or 'off', got {cohort!r}")
    units: list[list[str]] = []
    by_key: dict[str, list[list[str]]] = {}
    for h in hashes:
        spec = specs[h]
        if cohort == "off" or not can_share_cohort(spec):
            units.append([h])
            continue
        # the trainer names cohort members by loss: two entries of one loss (kd, kd-T2) go to separate cohorts
        groups = by_key.setdefault(spec.cohort_key(), [])
        unit = next((u for u in groups if all(specs[o].method != spec.method for o in u)), None)
        if unit is None:
            unit = []
            groups.append(unit)
            units.append(unit)
        unit.append(h)
    return units


def train_images(spec: RunSpec, sizes: dict[str, int] | None = None) -> int | None:
    """Training images one epoch of ``spec`` holds, or None when the dataset's size is unknown (``sizes``: known
    sizes of datasets that declare none, e.g. a plugin's, counted from the data)."""
    n = (sizes or {}).get(spec.dataset) or train_size(spec.dataset)
    if n is None:
        return None
    n = max(1, int(round(spec.train_fraction * n))) if spec.train_fraction < 1 else n
    for val in (spec.val_size, spec.holdout):   # validation carved off, then a trial's own held-out share
        n -= int(round(val * n)) if 0 < val < 1 else int(val)
    return max(n, 0)


def estimate(spec: RunSpec, sizes: dict[str, int] | None = None) -> tuple[int | None, int | None]:
    """(images processed, optimizer steps) for a whole run; None when unknown."""
    n = train_images(spec, sizes)
    if n is None:
        return None, None
    cfg = spec.train
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
    images_per_epoch = min(n, steps_per_epoch * cfg.batch_size)
    return images_per_epoch * cfg.epochs, steps_per_epoch * cfg.epochs


__all__ = ["Plan", "PlanEntry", "can_share_cohort", "estimate", "expand", "make_units", "resolved_loss_kwargs",
           "teacher_spec", "unit_phases"]
