"""What ``kdzoo tune`` searches: one study per (pair, method, access), and the runs its trials and finals are.

A study's trials are ordinary runs (``RunSpec``): the method's run in the recipe with the trial's values on
top, the tuning seed, and ``holdout`` set, so each trains on the student's own training images less a
held-out share and is judged on that share (never on the test split). The chosen configuration's final runs
are the recipe's runs of that row, seed by seed, with the chosen values: full student data, test split.
When the chosen values are the recipe's own, the final runs *are* the ``kdzoo bench`` runs (same hashes).

A study whose runs never use the teacher (``ce``) is shared by the pairs with that student, like its runs.
Parameter names carry where they go: ``train.lr`` (a training setting), ``loss.temperature`` (the loss).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from ...registry import LOSSES
from ..plan import STUDENT_ROLE, Plan, PlanEntry, resolved_loss_kwargs
from ..recipe.tune import loss_space
from ..recipe.types import Recipe
from ..spec import RunSpec

TRAIN, LOSS = "train.", "loss."


@dataclass
class Study:
    name: str                       # the Optuna study's name
    label: str                      # the method's label
    space: dict[str, Any]           # parameter name -> kdzoo.space Float / Int / Choice
    start: dict[str, Any]           # the recipe's values of the searched parameters (trial 0)
    template: RunSpec               # the method's run in the recipe, as a trial (tuning seed, holdout)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)   # (teacher, teacher model, student, access)
    # searched loss arguments the recipe leaves unset (None: the loss resolves them, e.g. from another one):
    # name -> the value the built loss resolved; a trial drawing that value keeps the argument unset
    implicit: dict[str, Any] = field(default_factory=dict)

    @property
    def file(self) -> str:
        """A file name for the study's journal: readable, and unique through a digest of the name."""
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.name.replace("->", "_to_")).strip("_")
        return f"{slug[:80]}-{hashlib.sha256(self.name.encode()).hexdigest()[:8]}"

    def trial_spec(self, params: dict[str, Any]) -> RunSpec:
        return apply(self.template, params, self.implicit)


def apply(spec: RunSpec, params: dict[str, Any], implicit: dict[str, Any] | None = None) -> RunSpec:
    """``spec`` with the searched values ``params`` in place (loss arguments resolved as a run's are). A value
    equal to what an unset argument resolves to (``implicit``) leaves it unset: the recipe's own run, same hash."""
    implicit = implicit or {}
    loss = {k[len(LOSS):]: (None if k in implicit and implicit[k] == v else v)
            for k, v in params.items() if k.startswith(LOSS)}
    train = {k[len(TRAIN):]: v for k, v in params.items() if k.startswith(TRAIN)}
    return replace(spec, loss_kwargs=resolved_loss_kwargs(spec.method, {**spec.loss_kwargs, **loss}),
                   train=replace(spec.train, **train))


def _implicit(spec: RunSpec, names: list[str]) -> dict[str, Any]:
    """The values the built loss gives the searched arguments ``names`` that ``spec`` leaves None."""
    if not names:
        return {}
    built = LOSSES.build(spec.method, **spec.loss_kwargs)
    out = {k: getattr(built, k[len(LOSS):], None) for k in names}
    return {k: v for k, v in out.items() if v is not None}


def shown(params: dict[str, Any]) -> dict[str, Any]:
    """Parameter names as people read them (``lr``, ``temperature``), prefixed only where both sides have one."""
    bare = [k.split(".", 1)[1] for k in params]
    return {(k.split(".", 1)[1] if bare.count(k.split(".", 1)[1]) == 1 else k): v for k, v in params.items()}


def make_studies(recipe: Recipe, plan: Plan) -> list[Study]:
    """The studies of ``recipe`` (which has a ``tune`` block), in plan order; ``plan`` is its ``plan.expand``."""
    tune = recipe.tune
    assert tune is not None
    pairs = {(p.teacher, p.student): p for p in recipe.pairs}
    studies: dict[str, Study] = {}
    for e in plan.entries:
        if e.role != STUDENT_ROLE:
            continue
        spec = plan.specs[e.hash]
        pair, method = pairs[(e.teacher, e.student)], recipe.method(e.label)
        space = {f"{TRAIN}{k}": p for k, p in tune.search.items()}
        space.update({f"{LOSS}{k}": p for k, p in loss_space(method, pair).items()})
        template = replace(spec, seed=tune.seed, train=replace(spec.train, seed=tune.seed), holdout=tune.val_size)
        start = {k: (getattr(template.train, k[len(TRAIN):]) if k.startswith(TRAIN)
                     else template.loss_kwargs.get(k[len(LOSS):])) for k in space}
        implicit = _implicit(spec, [k for k, v in start.items() if v is None])
        start = {k: implicit.get(k, v) for k, v in start.items() if implicit.get(k, v) is not None}
        alone = spec.teacher is None
        name = f"{e.student}/{e.label}" if alone else f"{e.teacher}->{e.student}/{e.label}/{e.access}"
        key = f"{e.label}:{template.config_hash()}"
        study = studies.get(key)
        if study is None:
            if any(s.name == name for s in studies.values()):     # the student alone, but set up per pair
                name = f"{e.teacher}->{name}"
            study = studies[key] = Study(name, e.label, space, start, template, implicit=implicit)
        row = (e.teacher, e.teacher_model, e.student, e.access)
        if row not in study.rows:
            study.rows.append(row)
    return list(studies.values())


def final_entries(plan: Plan, studies: list[Study], chosen: dict[str, dict[str, Any]]) -> Plan:
    """The plan of the tuned final runs: each row of each study with a chosen configuration, every recipe seed,
    labelled as in the recipe (so its summary compares with the tuned ``ce``)."""
    entries: list[PlanEntry] = []
    specs: dict[str, RunSpec] = {}
    for study in studies:
        params = chosen.get(study.name)
        if params is None:
            continue
        for e in plan.entries:
            if e.role == STUDENT_ROLE and e.label == study.label and (
                    e.teacher, e.teacher_model, e.student, e.access) in study.rows:
                spec = apply(plan.specs[e.hash], params, study.implicit)
                h = spec.config_hash()
                specs.setdefault(h, spec)
                entries.append(replace(e, hash=h))
    return Plan(recipe=plan.recipe, description=plan.description, dataset=plan.dataset, metric=plan.metric,
                entries=entries, specs=specs, reference=[])


__all__ = ["LOSS", "TRAIN", "Study", "apply", "final_entries", "make_studies", "shown"]
