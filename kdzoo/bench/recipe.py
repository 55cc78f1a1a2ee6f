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

import kdzoo
from ..data.shifts import parse_shift
from ..errors import ConfigError, KdzooError, did_you_mean
from ..losses.base import needs_of, requirements
from ..registry import DATASETS, LOSSES, MODELS
from ..teachers import check_access, parse_access
from .checker import Checker, Path_, numeric
from .plugins import expand_vars, import_plugin
from .recipe_train import check_student_train, check_train
from .recipe_types import (METHOD_KEYS, METRICS, PAIR_KEYS, REFERENCE_KEYS, TEACHER_KEYS, TEACHER_METHOD, TOP_KEYS,
                           MethodEntry, PairEntry, Recipe, ReferenceEntry, SlurmSettings, StudentData, TeacherEntry,
                           name_problem)
from .yaml_lines import check_size, parse_yaml

ACCESS_HELP = "features | logits | probs | topk:K | label"


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
    access = _access_list(c, doc.get("access", ["logits"]), ("access",))
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

    teachers = _teachers(c, doc["teachers"])
    methods = _methods(c, doc["methods"], access, train)
    pairs = _pairs(c, doc["pairs"], teachers, methods, access, train)
    reference = _reference(c, doc.get("reference"), pairs, methods)
    slurm = _slurm(c, doc.get("slurm"))
    return Recipe(name=name, description=description, dataset=dataset, teachers=teachers, pairs=pairs,
                  methods=methods, access=access, seeds=seeds, train=train, student_data=student_data,
                  metric=metric, plugins=plugins, reference=reference, slurm=slurm, path=source, text=text)


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


def _access_list(c: Checker, value: Any, path: Path_) -> list[str]:
    items = c.sequence(value, path, scalar_ok=True)
    if not items:
        raise c.error(path, f"needs at least one teacher access level ({ACCESS_HELP})")
    out = []
    for i, a in enumerate(items):
        a = c.string(a, (*path, i))
        try:
            parse_access(a)
        except KdzooError as exc:
            raise c.error((*path, i), str(exc)) from None
        if a in out:
            raise c.error((*path, i), f"access '{a}' is listed twice")
        out.append(a)
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


def _check_model(c: Checker, name: str, path: Path_) -> None:
    if ":" in name:
        prefix, _, model = name.partition(":")
        if prefix not in ("tv", "timm") or not model:
            raise c.error(path, f"unknown model source in '{name}' (external models are tv:NAME or timm:NAME)"
                                f"{did_you_mean(prefix, ['tv', 'timm'])}")
        try:  # optional dependencies, imported only for a recipe that names one of their models
            if prefix == "tv":
                import torchvision.models as tvm
                known = tvm.list_models(module=tvm)
                base = model
            else:
                import timm
                known, base = timm.list_models(), model.split(".")[0]
        except ImportError:
            raise c.error(path, f"model '{name}' needs {'torchvision' if prefix == 'tv' else 'timm'}, "
                                f"which is not installed") from None
        if base not in known:
            raise c.error(path, f"unknown {'torchvision' if prefix == 'tv' else 'timm'} model '{model}'"
                                f"{did_you_mean(base, known)}")
        return
    if name not in MODELS:
        raise c.error(path, f"unknown model '{name}'{did_you_mean(name, MODELS.names())} (kdzoo list models)"
                            f"{MODELS.broken_note(name)}")


def _teachers(c: Checker, value: Any) -> dict[str, TeacherEntry]:
    d = c.mapping(value, ("teachers",))
    if not d:
        raise c.error(("teachers",), "needs at least one teacher")
    out = {}
    for key, spec in d.items():
        path = ("teachers", key)
        if not isinstance(key, str) or not key:
            raise c.error(path, "teacher names must be strings")
        if name_problem(key):
            raise c.error(path, f"teacher name {key!r} {name_problem(key)}")
        if spec is None:
            raise c.error(path, "give the teacher a checkpoint ({ckpt: PATH}) or a training block ({train: {...}})")
        spec = c.mapping(spec, path, TEACHER_KEYS)
        model = c.string(spec.get("model", key), (*path, "model"))
        _check_model(c, model, (*path, "model") if "model" in spec else path)
        entry = TeacherEntry(name=key, model=model)
        if ("ckpt" in spec) == ("train" in spec):
            raise c.error(path, "give exactly one of 'ckpt' (load the teacher) or 'train' (train it first)")
        if "ckpt" in spec:
            raw = c.string(spec["ckpt"], (*path, "ckpt"))
            try:
                entry.ckpt = str(Path(expand_vars(raw)).absolute())
            except KeyError as exc:
                raise c.error((*path, "ckpt"), f"environment variable {exc.args[0]} is not set "
                                               f"(write ${{{exc.args[0]}:-default}} for a fallback)") from None
            for k in ("augment", "seed"):
                if k in spec:
                    raise c.error((*path, k), f"'{k}' applies only to a teacher trained by the sweep")
        else:
            entry.train = check_train(c, spec["train"], (*path, "train"), teacher=True)
            if "augment" in spec:
                entry.augment = c.boolean(spec["augment"], (*path, "augment"))
            if "seed" in spec:
                entry.seed = int(c.number(spec["seed"], (*path, "seed"), integer=True, low=0))
        out[key] = entry
    return out


def loss_requires(loss: str, args: dict[str, Any] | None = None) -> str:
    """The teacher access ``loss`` built with ``args`` needs: read from the instance, since a
    hyperparameter may change it (mcld with ``normalize: l2`` needs raw logits)."""
    try:
        return requirements(LOSSES.build(loss, **(args or {})))
    except (KdzooError, TypeError):  # bad arguments are reported elsewhere; a plugin may need arguments
        return requirements(LOSSES.entry(loss).factory)


def _check_method_access(c: Checker, m: MethodEntry, requires: str, recipe_access: list[str], path: Path_) -> None:
    """Refuse a method whose loss (as configured) needs more teacher access than a level it is run at."""
    if requires == "none":
        return
    for j, a in enumerate(m.access if m.access is not None else recipe_access):
        try:
            check_access(m.label, requires, a)
        except KdzooError as exc:
            where = (*path, "access", j) if m.access is not None and path[0] == "methods" else path
            extra = "" if m.access is not None else " (give this method its own 'access' list)"
            raise c.error(where, f"{exc}{extra}") from None


def loss_needs(loss: str) -> frozenset[str]:
    """The extra inputs a registered loss declares at class level (``DistillLoss.needs``)."""
    return needs_of(LOSSES.entry(loss).factory)


def _check_loss_args(c: Checker, loss: str, args: dict[str, Any], path: Path_) -> dict[str, Any]:
    """Check each hyperparameter's name, coerce numbers to the default's type, then build the loss once."""
    entry = LOSSES.entry(loss)
    defaults = entry.hyperparameters()
    out = {}
    for key, v in args.items():
        default = defaults.get(key)
        if isinstance(default, float) and not isinstance(v, bool):
            num = numeric(v, integer=False)   # "5e-4" (a string to YAML) and 4 (an int) become floats
            v = float(num) if num is not None else v
        try:
            LOSSES.check_kwargs(loss, {key: v})
        except ConfigError as exc:
            raise c.error((*path, key), str(exc)) from None
        out[key] = v
    try:
        LOSSES.build(loss, **out)
    except (KdzooError, TypeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        bad = next((k for k in out if f"{k} " in msg or f"'{k}'" in msg or msg.startswith(k)), None)
        raise c.error((*path, bad) if bad else path, f"bad hyperparameters for loss '{loss}': {msg}") from None
    return out


def _methods(c: Checker, value: Any, access: list[str], recipe_train: dict[str, Any]) -> list[MethodEntry]:
    items = c.sequence(value, ("methods",))
    if not items:
        raise c.error(("methods",), "needs at least one method")
    out: list[MethodEntry] = []
    for i, item in enumerate(items):
        path = ("methods", i)
        if isinstance(item, str):
            item = {"name": item}
            name_path = path
        else:
            item = c.mapping(item, path, METHOD_KEYS, required=("name",))
            name_path = (*path, "name")
        loss = c.string(item["name"], name_path)
        if loss not in LOSSES:
            raise c.error(name_path, f"unknown loss '{loss}'{did_you_mean(loss, LOSSES.names())} "
                                     f"(kdzoo list losses){LOSSES.broken_note(loss)}")
        label = c.string(item.get("label", loss), (*path, "label"))
        if name_problem(label):
            raise c.error((*path, "label"), f"label {label!r} {name_problem(label)}")
        if any(m.label == label for m in out):
            hint = "give one of them a 'label'" if "label" not in item else "labels must be unique"
            raise c.error((*path, "label") if "label" in item else path,
                          f"method label '{label}' is used twice; {hint}")
        if label == TEACHER_METHOD:
            raise c.error((*path, "label"), f"'{TEACHER_METHOD}' is reserved for the teacher's own accuracy")
        args = _check_loss_args(c, loss, c.mapping(item.get("args"), (*path, "args")), (*path, "args"))
        m_access = _access_list(c, item["access"], (*path, "access")) if "access" in item else None
        requires = loss_requires(loss, args)
        if requires == "none" and m_access is not None:
            raise c.error((*path, "access"), f"loss '{loss}' never looks at the teacher, so 'access' does not "
                                             f"apply (it runs once per pair and seed)")
        train = check_train(c, item.get("train"), (*path, "train"), base=recipe_train)
        entry = MethodEntry(loss=loss, label=label, args=args, access=m_access, train=train)
        _check_method_access(c, entry, requires, access, path)
        out.append(entry)
    return out


def _pairs(c: Checker, value: Any, teachers: dict[str, TeacherEntry], methods: list[MethodEntry],
           access: list[str], recipe_train: dict[str, Any]) -> list[PairEntry]:
    items = c.sequence(value, ("pairs",))
    if not items:
        raise c.error(("pairs",), "needs at least one teacher-student pair")
    labels = [m.label for m in methods]
    losses = sorted({m.loss for m in methods})
    out: list[PairEntry] = []
    for i, item in enumerate(items):
        path = ("pairs", i)
        item = c.mapping(item, path, PAIR_KEYS, required=("teacher", "student"))
        teacher = c.string(item["teacher"], (*path, "teacher"))
        if teacher not in teachers:
            raise c.error((*path, "teacher"), f"teacher '{teacher}' is not defined under 'teachers'"
                                              f"{did_you_mean(teacher, teachers)}")
        student = c.string(item["student"], (*path, "student"))
        _check_model(c, student, (*path, "student"))
        if any(p.teacher == teacher and p.student == student for p in out):
            raise c.error(path, f"pair {teacher} -> {student} is listed twice")
        method_args: dict[str, dict[str, Any]] = {}
        overrides = c.mapping(item.get("method_args"), (*path, "method_args"))
        for key, args in overrides.items():
            apath = (*path, "method_args", key)
            if key in labels:
                targets = [key]
            elif key in losses:
                targets = [m.label for m in methods if m.loss == key]
            else:
                raise c.error(apath, f"'{key}' is neither a method label nor a loss in 'methods'"
                                     f"{did_you_mean(str(key), labels + losses)}")
            args = c.mapping(args, apath)
            for label in targets:
                m = next(x for x in methods if x.label == label)
                merged = {**method_args.get(label, {}), **args}
                _check_loss_args(c, m.loss, {**m.args, **merged}, apath)
                _check_method_access(c, m, loss_requires(m.loss, {**m.args, **merged}), access, apath)
                method_args[label] = merged
        train = check_train(c, item.get("train"), (*path, "train"), base=recipe_train)
        skip = _skip(c, item.get("skip"), (*path, "skip"), labels)
        for m in methods:
            if m.label not in skip and "feature_maps" in loss_needs(m.loss):
                for model in (student, teachers[teacher].model):
                    if not _has_feature_map(model):
                        raise c.error(path, f"method '{m.label}' needs spatial feature maps, which model '{model}' "
                                            f"lacks; add 'skip: [{m.label}]' to this pair or use a convolutional model")
        entry = PairEntry(teacher=teacher, student=student, method_args=method_args, train=train, skip=skip)
        check_student_train(c, recipe_train, entry, i, methods)
        out.append(entry)
    return out


def _skip(c: Checker, value: Any, path: Path_, labels: list[str]) -> list[str]:
    out = []
    for i, label in enumerate(c.sequence(value if value is not None else [], path, scalar_ok=True)):
        label = c.string(label, (*path, i))
        if label not in labels:
            raise c.error((*path, i), f"'{label}' is not a method label{did_you_mean(label, labels)}")
        out.append(label)
    return out


def _has_feature_map(model: str) -> bool:
    """Whether a model exposes ``forward_feature_map`` and ``classifier`` (built once, without weights)."""
    built = kdzoo.build_model(model, num_classes=10)
    return hasattr(built, "forward_feature_map") and hasattr(built, "classifier")


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
        access = _access_list(c, item["access"], (*path, "access"))[0] if "access" in item else None
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


__all__ = ["ACCESS_HELP", "load_recipe", "loss_needs", "loss_requires", "parse_recipe"]
