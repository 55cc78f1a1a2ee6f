"""Recipes: YAML files describing a benchmark sweep, validated into plain dataclasses.

A recipe is checked completely before anything runs. Every problem raises
``kdzoo.ConfigError`` with one line: ``FILE:LINE: KEY.PATH: what is wrong``
(plus "did you mean ..." for misspelt names).

Schema (only ``dataset``, ``teachers``, ``pairs`` and ``methods`` are required)::

    name: quickstart                  # default: the file name without .yaml; names the output folder
    description: one line
    dataset: fashion-mnist            # a registered dataset (kdzoo list datasets)
    teachers:                         # how each teacher is obtained; the key is the model name
      fmnist_teacher: {train: {epochs: 4, lr: 0.05}}   # trained by the sweep (once, cached by hash)
      resnet32x4: {ckpt: "${KDZOO_TEACHERS:-teachers}/resnet32x4_vanilla/ckpt_epoch_240.pth"}
      # optional per teacher: model (architecture, default: the key), augment (when trained), seed (0)
    pairs:
      - {teacher: fmnist_teacher, student: fmnist_cnn_tiny}
      - {teacher: resnet56, student: resnet20, method_args: {dkd: {beta: 2.0}}, train: {lr: 0.01}}
    methods:                          # loss names, or {name, label, args, access, train}
      - ce
      - kd
      - {name: kd, label: kd-T2, args: {temperature: 2}, access: [logits, probs]}
      - {name: kd, label: kd+dot, train: {optimizer: dot}}   # this method's runs only; wins over the rest
    access: [logits]                  # teacher access levels swept: features | logits | probs | topk:K | label
    seeds: [0, 1]
    train: {epochs: 5, batch_size: 128, lr: 0.05}   # kdzoo.engine.TrainConfig fields, for the students
    student_data: {train_fraction: 1.0, hide_labels: false, augment: false, val_size: 0, teacher_budget: null,
                   student_shift: ""}            # e.g. "rotate:25+noise:20" (kdzoo.data.shifts)
    metric: top1                      # top1 (last epoch) | top1_at_best_val (needs val_size): what is ranked
    plugins: [my_losses.py, some.module]
    reference:                        # published numbers shown beside ours (method: a label, or "teacher")
      - {teacher: resnet32x4, student: resnet8x4, method: kd, top1: 73.33, source: "DKD paper, Table 1"}
    slurm: {partition: gpu, time_min: 600, gpus_per_job: 1, cpus_per_task: 8, mem_gb: 32,
            array_parallelism: 16, account: null, qos: null, constraint: null, additional: {}}
    tune: {trials: 20, search: {lr: {low: 0.01, high: 0.2, log: true}}}   # kdzoo tune (recipes/README.md)

Meaning of the less obvious parts:

- **Teachers.** A teacher with ``ckpt`` is loaded from that file (kdzoo ``model.pt`` or the
  RepDistiller/mdistiller layout ``{"model": state_dict}``). ``${VAR}`` and
  ``${VAR:-default}`` are expanded; a relative path is relative to the directory
  ``kdzoo bench`` runs in. A teacher with ``train`` is trained by the sweep before any
  student, with method ``ce`` on the full labelled training split, seed ``seed`` (0), and
  its own ``train`` block over the TrainConfig defaults (it does *not* inherit the
  recipe's ``train``, so changing the students' schedule does not retrain the teacher).
- **Methods.** ``label`` (default: the loss name) is what the leaderboard shows and
  must be unique. ``args`` are the loss's hyperparameters (``kdzoo list losses``);
  unspecified ones take the loss's defaults, and the resolved values are part of each
  run's hash. ``access`` overrides the recipe's ``access`` list for this method.
  ``pairs[i].method_args`` adds per-pair overrides keyed by a label, or by a loss name
  (then it applies to every entry of that loss); ``pairs[i].train`` overrides training
  settings for that pair's students (e.g. lr 0.01 for MobileNet students), and a method
  entry's ``train`` for that method's runs (e.g. ``optimizer: dot`` beside the plain
  method): recipe < pair < method, the most specific block wins; teachers never take them;
  ``pairs[i].skip`` lists method labels that pair does not run (e.g. ``sdd``, which
  needs spatial feature maps, for an MLP student).
- **The student alone.** A loss that never looks at the teacher (``requires: none``,
  e.g. ``ce``) ignores ``access``: it runs once per pair and seed, with access
  ``none``, and is shared by every pair with the same student. With
  ``student_data.hide_labels: true`` the student side has no labels, so it instead
  trains on the teacher's top-1 labels (pseudo-labelling); it then needs the teacher
  and runs once per pair and seed with access ``label`` (every access level reveals
  the top-1, so the result would be the same at any level).
- **Plugins.** A recipe executes no code of its own: the only code it can bring in is
  what its ``plugins`` list names, each a ``.py`` file (relative to the recipe's
  folder) or an importable module, imported before the recipe's names are checked.
  That is how a user's own loss, model or dataset joins a sweep
  (``@kdzoo.register_loss("my_kd")`` in the file). Packages that register through
  entry points (group ``kdzoo.losses`` etc.) are found without being listed.
- **Numbers.** YAML reads ``5e-4`` as a string; float settings accept such strings.
"""
from __future__ import annotations

import os
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from ...data.shifts import parse_shift
from ...errors import ConfigError, did_you_mean
from ...registry import DATASETS
from .checker import Checker
from .entries import access_list, check_methods, check_pairs, check_teachers
from .plugins import expand_vars, import_plugin
from .train import check_train
from .tune import check_tune
from .types import (METRICS, REFERENCE_KEYS, TEACHER_METHOD, TOP_KEYS, MethodEntry, PairEntry, Recipe, ReferenceEntry,
                    SlurmSettings, StudentData)
from .yaml_lines import check_size, parse_yaml


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"recipe not found: {path}")
    check_size(p.stat().st_size, str(path))   # before reading a file that may be anything
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read recipe {path}: {exc}") from None
    return parse_recipe(text, source=str(path), base_dir=p.resolve().parent, default_name=p.stem)


def parse_recipe(text: str, *, source: str = "<recipe>", base_dir: str | os.PathLike = ".",
                 default_name: str = "recipe") -> Recipe:
    root = parse_yaml(text, source)
    c = Checker(source, root)
    doc = c.mapping(root, (), TOP_KEYS, required=("dataset", "teachers", "pairs", "methods"))

    # plugins first: they may register the names the rest of the recipe uses
    plugins = []
    for i, ref in enumerate(c.sequence(doc.get("plugins") or [], ("plugins",))):
        ref = c.string(ref, ("plugins", i))
        try:
            ref = expand_vars(ref)
        except KeyError as exc:
            raise c.error(("plugins", i), f"environment variable {exc.args[0]} is not set") from None
        if ref.endswith(".py") or "/" in ref or os.sep in ref:
            file = (Path(base_dir) / ref).resolve()
            if not file.is_file():
                raise c.error(("plugins", i), f"plugin file not found: {file}")
            ref = str(file)
        try:
            import_plugin(ref)
        except (Exception, SystemExit) as exc:   # a plugin's sys.exit must not end kdzoo with only its text
            first = (str(exc).strip().splitlines() or [""])[0]
            why = f"it called sys.exit({exc.code!r})" if isinstance(exc, SystemExit) else \
                f"{type(exc).__name__}: {first}"
            raise c.error(("plugins", i), f"cannot import plugin '{doc['plugins'][i]}': {why}") from None
        plugins.append(ref)


    name = c.string(doc.get("name", default_name), ("name",))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise c.error(("name",), f"'{name}' must be a plain file name (letters, digits, _ . + -)")
    description = c.string(doc.get("description", ""), ("description",), allow_empty=True)

    dataset = c.string(doc["dataset"], ("dataset",))
    if dataset not in DATASETS:
        raise c.error(("dataset",), f"unknown dataset '{dataset}'{did_you_mean(dataset, DATASETS.names())} "
                                    f"(known: {', '.join(DATASETS.names())}){DATASETS.broken_note(dataset)}")

    seeds = _seeds(c, doc.get("seeds", [0]))
    access = access_list(c, doc.get("access", ["logits"]), ("access",))
    train = check_train(c, doc.get("train"), ("train",))
    student_data = _student_data(c, doc.get("student_data"))
    metric = c.string(doc.get("metric", "top1"), ("metric",))
    if metric == "best_top1":
        raise c.error(("metric",), "best_top1 picks each run's epoch on the test split; rank on top1 (last epoch), "
                                   "or set student_data.val_size and use top1_at_best_val")
    if metric not in METRICS:
        raise c.error(("metric",), f"'{metric}' is not one of {', '.join(METRICS)}{did_you_mean(metric, METRICS)}")
    if metric == "top1_at_best_val" and not student_data.val_size:
        raise c.error(("metric",), "top1_at_best_val needs a validation split: set student_data.val_size")

    teachers = check_teachers(c, doc["teachers"])
    methods = check_methods(c, doc["methods"], access, train)
    pairs = check_pairs(c, doc["pairs"], teachers, methods, access, train)
    reference = _reference(c, doc.get("reference"), pairs, methods)
    slurm = _slurm(c, doc.get("slurm"))
    tune = check_tune(c, doc["tune"], methods, pairs, train) if doc.get("tune") is not None else None
    return Recipe(name=name, description=description, dataset=dataset, teachers=teachers, pairs=pairs,
                  methods=methods, access=access, seeds=seeds, train=train, student_data=student_data,
                  metric=metric, plugins=plugins, reference=reference, slurm=slurm, tune=tune, path=source, text=text)


def _seeds(c: Checker, value: Any) -> list[int]:
    seeds = c.sequence(value, ("seeds",), scalar_ok=False)
    if not seeds:
        raise c.error(("seeds",), "needs at least one seed")
    out = []
    for i, s in enumerate(seeds):
        s = c.number(s, ("seeds", i), integer=True, low=0)
        if s in out:
            raise c.error(("seeds", i), f"seed {s} is listed twice")
        out.append(int(s))
    return out


def _student_data(c: Checker, value: Any) -> StudentData:
    path = ("student_data",)
    d = c.mapping(value, path, tuple(f.name for f in fields(StudentData)))
    sd = StudentData()
    if "train_fraction" in d:
        sd.train_fraction = float(c.number(d["train_fraction"], (*path, "train_fraction"), low=0, high=1,
                                           low_open=True))
    if "hide_labels" in d:
        sd.hide_labels = c.boolean(d["hide_labels"], (*path, "hide_labels"))
    if "augment" in d:
        sd.augment = c.boolean(d["augment"], (*path, "augment"))
    if "val_size" in d:
        v = c.number(d["val_size"], (*path, "val_size"), low=0)
        sd.val_size = float(v) if v < 1 else v
    if d.get("teacher_budget") is not None:
        sd.teacher_budget = int(c.number(d["teacher_budget"], (*path, "teacher_budget"), integer=True, low=1))
    if d.get("student_shift"):
        sd.student_shift = c.string(d["student_shift"], (*path, "student_shift"))
        try:
            parse_shift(sd.student_shift)
        except ConfigError as e:
            raise c.error((*path, "student_shift"), str(e)) from None
    return sd


def _reference(c: Checker, value: Any, pairs: list[PairEntry], methods: list[MethodEntry]) -> list[ReferenceEntry]:
    items = c.sequence(value or [], ("reference",))
    labels = [m.label for m in methods] + [TEACHER_METHOD]
    names = sorted({f"{p.teacher} -> {p.student}" for p in pairs})
    out = []
    for i, item in enumerate(items):
        path = ("reference", i)
        item = c.mapping(item, path, REFERENCE_KEYS, required=("teacher", "student", "method", "top1", "source"))
        teacher = c.string(item["teacher"], (*path, "teacher"))
        student = c.string(item["student"], (*path, "student"))
        if not any(p.teacher == teacher and p.student == student for p in pairs):
            raise c.error(path, f"no pair {teacher} -> {student} in 'pairs'"
                                f"{did_you_mean(f'{teacher} -> {student}', names)}")
        method = c.string(item["method"], (*path, "method"))
        if method not in labels:
            raise c.error((*path, "method"), f"'{method}' is not a method label of this recipe"
                                             f"{did_you_mean(method, labels)} (or '{TEACHER_METHOD}')")
        top1 = float(c.number(item["top1"], (*path, "top1"), low=0, high=100))
        source = c.string(item["source"], (*path, "source"))
        access = access_list(c, item["access"], (*path, "access"))[0] if "access" in item else None
        note = c.string(item.get("note", ""), (*path, "note"), allow_empty=True)
        out.append(ReferenceEntry(teacher, student, method, top1, source, access, note))
    return out


def _slurm(c: Checker, value: Any) -> SlurmSettings:
    path = ("slurm",)
    names = tuple(f.name for f in fields(SlurmSettings))
    d = c.mapping(value, path, names)
    hints = typing.get_type_hints(SlurmSettings)
    out = SlurmSettings()
    for key, v in d.items():
        v = c.typed(v, hints[key], (*path, key))
        if key in ("time_min", "gpus_per_job", "cpus_per_task", "array_parallelism", "mem_gb") and v is not None:
            c._range(v, (*path, key), 0 if key == "gpus_per_job" else 1, None, False)
        setattr(out, key, v)
    return out


__all__ = ["load_recipe", "parse_recipe"]
