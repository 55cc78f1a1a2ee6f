"""The ``tune:`` block of a recipe, checked with the rest of it: one line ``FILE:LINE: tune.key: problem``.

Also the search spaces each method brings (its loss's declaration, less the arguments its recipe entry
fixes): a bad declaration by a loss or a plugin is reported at the method's line, before anything runs.
Nothing here needs Optuna, so a recipe with a ``tune:`` block loads (and ``kdzoo bench`` runs it) without it.
"""
from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any

from ...engine import TrainConfig
from ...errors import ConfigError, KdzooError, did_you_mean
from ...registry import LOSSES
from ...space import Choice, Float, Int, check_space
from .checker import Checker, Path_, numeric
from .types import MethodEntry, PairEntry, PrunerSettings, TuneSettings

TUNE_KEYS = ("trials", "search", "val_size", "seed", "objective", "sampler", "pruner", "start_from_defaults")
SAMPLER_KEYS, PRUNER_KEYS = ("name", "seed", "startup_trials"), ("name", "min_epochs", "reduction_factor")
SAMPLERS, PRUNERS, OBJECTIVES = ("tpe", "random"), ("successive_halving", "hyperband"), ("val_top1",)
# training settings that are not hyperparameters of a method: where and how a run computes, its seed,
# its budget (the pruner's resource), or lists
NOT_SEARCHED = ("epochs", "seed", "device", "cpu_threads", "eval_batch_size", "nonfinite_check_every", "compile",
                "channels_last", "amp", "cache_teacher", "pseudo_labels", "steps_per_epoch", "milestones")
REQUIRED_SEARCH = "lr"


def check_tune(c: Checker, value: Any, methods: list[MethodEntry], pairs: list[PairEntry],
               recipe_train: dict[str, Any]) -> TuneSettings:
    path: Path_ = ("tune",)
    d = c.mapping(value, path, TUNE_KEYS, required=("trials", "search"))
    runs = [(p, m) for p in pairs for m in methods if m.label not in p.skip]
    trains = [{**recipe_train, **p.train, **m.train} for p, m in runs]
    out = TuneSettings(trials=int(c.number(d["trials"], (*path, "trials"), integer=True, low=1)),
                       search=_search(c, d["search"], (*path, "search"), trains))
    if "val_size" in d:
        v = c.number(d["val_size"], (*path, "val_size"), low=0, low_open=True)
        if v >= 1 and numeric(v, integer=True) is None:
            raise c.error((*path, "val_size"), f"a share below 1 or a whole number of images, got {v}")
        out.val_size = float(v)
    if "seed" in d:
        out.seed = int(c.number(d["seed"], (*path, "seed"), integer=True, low=0))
    if "objective" in d:
        out.objective = _one_of(c, d["objective"], (*path, "objective"), OBJECTIVES)
    if "start_from_defaults" in d:
        out.start_from_defaults = c.boolean(d["start_from_defaults"], (*path, "start_from_defaults"))
    _sampler(c, d.get("sampler"), (*path, "sampler"), out)
    if d.get("pruner") is not None:
        out.pruner = _pruner(c, d["pruner"], (*path, "pruner"), min(int(t.get("epochs", 10)) for t in trains))
    for i, m in enumerate(methods):
        for p in pairs:
            if m.label not in p.skip:
                try:
                    loss_space(m, p)
                except ConfigError as exc:
                    raise c.error(("methods", i), str(exc)) from None
    return out


def _one_of(c: Checker, value: Any, path: Path_, allowed: tuple[str, ...]) -> str:
    value = c.string(value, path)
    if value not in allowed:
        raise c.error(path, f"'{value}' is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}")
    return value


def _search(c: Checker, value: Any, path: Path_, trains: list[dict[str, Any]]) -> dict[str, Any]:
    """TrainConfig field -> Float/Int ({low, high, log}, by the field's type) or Choice (a list of values)."""
    d = c.mapping(value, path)
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in fields(TrainConfig) if f.name not in NOT_SEARCHED]
    space: dict[str, Any] = {}
    for key, spec in d.items():
        where = (*path, key)
        if key in NOT_SEARCHED:
            raise c.error(where, f"'{key}' is not searched (it is not a hyperparameter of a method); "
                                 f"searchable: {', '.join(names)}")
        if key not in names:
            raise c.error(where, f"unknown training setting '{key}'{did_you_mean(str(key), names)}")
        space[key] = _param(c, spec, where, hints[key])
        try:
            check_space("training settings", {key: space[key]}, {k: None for k in names},
                        lambda over: [TrainConfig(**{**t, **over}) for t in trains or [{}]])
        except ConfigError as exc:
            raise c.error(where, str(exc)) from None
    if REQUIRED_SEARCH not in space:
        raise c.error(path, f"must search '{REQUIRED_SEARCH}' (every method, ce included, gets the same chance "
                            f"at the learning rate), e.g. {REQUIRED_SEARCH}: {{low: 0.01, high: 0.2, log: true}}")
    return space


def _param(c: Checker, spec: Any, path: Path_, hint: Any) -> Any:
    if isinstance(spec, list):
        values = tuple(c.typed(v, hint, (*path, i)) for i, v in enumerate(spec))
        if len(set(values)) != len(values):
            raise c.error(path, "a choice lists a value twice")
        kind: Any = Choice
        args: tuple = (values,)
    elif hint in (int, float):
        d = c.mapping(spec, path, ("low", "high", "log"), required=("low", "high"))
        low, high = (c.typed(d[k], hint, (*path, k)) for k in ("low", "high"))
        log = c.boolean(d["log"], (*path, "log")) if "log" in d else False
        kind, args = (Float if hint is float else Int), (low, high, log)
    else:
        raise c.error(path, f"give the values to choose from as a list, e.g. [{'true, false' if hint is bool else 'a, b'}]")
    try:
        return kind(*args)
    except ConfigError as exc:
        raise c.error(path, str(exc)) from None


def _sampler(c: Checker, value: Any, path: Path_, out: TuneSettings) -> None:
    d = c.mapping(value, path, SAMPLER_KEYS)
    if "name" in d:
        out.sampler = _one_of(c, d["name"], (*path, "name"), SAMPLERS)
    if "seed" in d:
        out.sampler_seed = int(c.number(d["seed"], (*path, "seed"), integer=True, low=0))
    if "startup_trials" in d:
        if out.sampler != "tpe":
            raise c.error((*path, "startup_trials"), "applies to the tpe sampler only")
        out.startup_trials = int(c.number(d["startup_trials"], (*path, "startup_trials"), integer=True, low=0))


def _pruner(c: Checker, value: Any, path: Path_, epochs: int) -> PrunerSettings:
    d = c.mapping(value, path, PRUNER_KEYS)
    out = PrunerSettings()
    if "name" in d:
        out.name = _one_of(c, d["name"], (*path, "name"), PRUNERS)
    if "reduction_factor" in d:
        out.reduction_factor = int(c.number(d["reduction_factor"], (*path, "reduction_factor"), integer=True, low=2))
    if "min_epochs" in d:
        out.min_epochs = int(c.number(d["min_epochs"], (*path, "min_epochs"), integer=True, low=1))
    if out.min_epochs >= epochs:
        raise c.error((*path, "min_epochs") if "min_epochs" in d else path,
                      f"the pruner's first look (epoch {out.min_epochs}) must come before the last epoch ({epochs}), "
                      f"or it never stops a trial")
    return out


def loss_space(method: MethodEntry, pair: PairEntry) -> dict[str, Any]:
    """The loss's search space less what the method entry (and the pair's ``method_args``) fix; each end of each
    range must build the loss together with those fixed values. ConfigError (one line) when it does not."""
    fixed = {**method.args, **pair.method_args.get(method.label, {})}
    space = {k: p for k, p in LOSSES.search_space(method.loss).items() if k not in fixed}

    def build(over: dict[str, Any]) -> Any:
        try:
            return LOSSES.build(method.loss, **{**fixed, **over})
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from None

    params = {k: v for k, v in LOSSES.entry(method.loss).hyperparameters().items()}
    try:
        check_space(f"method '{method.label}' (loss '{method.loss}')", space, params, build)
    except KdzooError as exc:
        raise ConfigError(str(exc)) from None
    return space


__all__ = ["NOT_SEARCHED", "TUNE_KEYS", "check_tune", "loss_space"]
