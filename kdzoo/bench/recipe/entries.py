"""The ``teachers:``, ``methods:`` and ``pairs:`` sections of a recipe: model names, loss names and
arguments, the teacher access each method needs, per-pair overrides and skips (see parse.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import kdzoo
from ...errors import ConfigError, KdzooError, did_you_mean
from ...losses.base import needs_of, requirements
from ...registry import LOSSES, MODELS
from ...teachers import ACCESS_HELP, check_access, parse_access
from .checker import Checker, Path_, numeric
from .plugins import expand_vars
from .train import check_student_train, check_train
from .types import (METHOD_KEYS, PAIR_KEYS, TEACHER_KEYS, TEACHER_METHOD, MethodEntry, PairEntry, TeacherEntry,
                    name_problem)

def access_list(c: Checker, value: Any, path: Path_) -> list[str]:
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


def check_model(c: Checker, name: str, path: Path_) -> None:
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


def check_teachers(c: Checker, value: Any) -> dict[str, TeacherEntry]:
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
        check_model(c, model, (*path, "model") if "model" in spec else path)
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


def check_method_access(c: Checker, m: MethodEntry, requires: str, recipe_access: list[str], path: Path_) -> None:
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


def check_loss_args(c: Checker, loss: str, args: dict[str, Any], path: Path_) -> dict[str, Any]:
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


def check_methods(c: Checker, value: Any, access: list[str], recipe_train: dict[str, Any]) -> list[MethodEntry]:
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
        args = check_loss_args(c, loss, c.mapping(item.get("args"), (*path, "args")), (*path, "args"))
        m_access = access_list(c, item["access"], (*path, "access")) if "access" in item else None
        requires = loss_requires(loss, args)
        if requires == "none" and m_access is not None:
            raise c.error((*path, "access"), f"loss '{loss}' never looks at the teacher, so 'access' does not "
                                             f"apply (it runs once per pair and seed)")
        train = check_train(c, item.get("train"), (*path, "train"), base=recipe_train)
        entry = MethodEntry(loss=loss, label=label, args=args, access=m_access, train=train)
        check_method_access(c, entry, requires, access, path)
        out.append(entry)
    return out


def check_pairs(c: Checker, value: Any, teachers: dict[str, TeacherEntry], methods: list[MethodEntry],
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
        check_model(c, student, (*path, "student"))
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
                check_loss_args(c, m.loss, {**m.args, **merged}, apath)
                check_method_access(c, m, loss_requires(m.loss, {**m.args, **merged}), access, apath)
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


__all__ = ["access_list", "check_loss_args", "check_method_access", "check_methods", "check_model",
           "check_pairs", "check_teachers", "loss_needs", "loss_requires"]
