"""The ``train:`` blocks of a recipe (the recipe's, a teacher's, a pair's, a method entry's): their keys
and values, and the TrainConfig each student run gets from them, recipe < pair < method.

Each block is checked on top of the blocks it overrides, so a setting that is valid only together
with another block's (``dot_delta`` under the recipe's ``optimizer: dot``) is accepted, and a
combination that is not (the recipe's ``grad_clip`` with a method's ``optimizer: dot``) is refused
before anything runs, at the line of the most specific block.
"""
from __future__ import annotations

import re
import typing
from dataclasses import fields
from typing import Any

from ...engine import TrainConfig
from ...errors import ConfigError, did_you_mean
from .checker import Checker, Path_
from .types import MethodEntry, PairEntry


def check_train(c: Checker, value: Any, path: Path_, *, teacher: bool = False,
                base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate one block of TrainConfig overrides on top of ``base`` (the blocks it overrides);
    returns the block's own coerced settings, not merged."""
    d = c.mapping(value, path)
    hints = typing.get_type_hints(TrainConfig)
    names = [f.name for f in fields(TrainConfig)]
    out: dict[str, Any] = {}
    for key, v in d.items():
        if key == "seed":
            where = "the teacher's 'seed' key" if teacher else "the recipe's 'seeds' list"
            raise c.error((*path, key), f"set seeds with {where}, not in 'train'")
        if key not in names:
            raise c.error((*path, key), f"unknown training setting '{key}'{did_you_mean(str(key), names)}")
        out[key] = c.typed(v, hints[key], (*path, key))
    check_combined(c, {**(base or {}), **out}, path, out)
    return out


def check_combined(c: Checker, settings: dict[str, Any], path: Path_, own: dict[str, Any], context: str = "") -> None:
    """Build the TrainConfig of ``settings``; a refusal is reported at the setting of ``own`` (the block
    at ``path``) that the message names first, else at the block."""
    try:
        TrainConfig(**settings)
    except (ConfigError, TypeError, ValueError) as exc:
        msg = str(exc)
        named = {k: m.start() for k in own if (m := re.search(rf"\b{re.escape(str(k))}\b", msg))}
        # DOT's refusals open with "optimizer dot": the setting named after it is the one to change
        bad = min(named, key=lambda k: (k == "optimizer", named[k])) if named else None
        raise c.error((*path, bad) if bad else path, msg + context) from None


def check_student_train(c: Checker, recipe_train: dict[str, Any], pair: PairEntry, pair_index: int,
                        methods: list[MethodEntry]) -> None:
    """The combined settings of every method a pair runs (recipe < pair < method). Recipe + pair and
    recipe + method were checked with their blocks; only a pair and a method that both set something
    can still clash."""
    if not pair.train:
        return
    for i, m in enumerate(methods):
        if m.train and m.label not in pair.skip:
            check_combined(c, {**recipe_train, **pair.train, **m.train}, ("methods", i, "train"), m.train,
                           f" (with pairs[{pair_index}].train, {pair.teacher} -> {pair.student}; "
                           f"a method's setting wins over the pair's)")


__all__ = ["check_combined", "check_student_train", "check_train"]
