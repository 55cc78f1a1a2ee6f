"""Search spaces: the ranges over which a loss's hyperparameters are tuned.

A loss declares its space in its own file, beside its defaults, as a class attribute::

    search_space = {"temperature": Float(1.0, 8.0, log=True), "kd_weight": Float(0.1, 10.0, log=True)}

A variant registered with other defaults may bring its own
(``register_loss("kd+ls", KD, defaults=..., space={...})``). A loss that declares
none is tuned over the shared training settings only. ``check_space`` refuses a
declaration before anything runs: every name must be one of the loss's
hyperparameters, and each end of a range (each choice) must build a valid loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

from .errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Float:
    """A real number in [low, high], drawn on a log scale when ``log``."""
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self, self.low, self.high, (int, float))
        if self.log and not self.low > 0:
            raise ConfigError(f"{self}: a log-scale range needs low > 0")

    def ends(self) -> list[Any]:
        return [float(self.low), float(self.high)]

    def describe(self) -> str:
        return f"{_num(self.low)} to {_num(self.high)}, {'log' if self.log else 'linear'}"

    def as_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": float(self.low), "high": float(self.high), "log": self.log}


@dataclass(frozen=True)
class Int:
    """An integer in [low, high] (both included), drawn on a log scale when ``log``."""
    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_range(self, self.low, self.high, (int,))
        if self.log and not self.low > 0:
            raise ConfigError(f"{self}: a log-scale range needs low > 0")

    def ends(self) -> list[Any]:
        return [int(self.low), int(self.high)]

    def describe(self) -> str:
        return f"{self.low} to {self.high}, integer{', log' if self.log else ''}"

    def as_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": int(self.low), "high": int(self.high), "log": self.log}


@dataclass(frozen=True)
class Choice:
    """One of a few values (numbers, strings or flags)."""
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple) or len(self.values) < 2:
            raise ConfigError(f"Choice needs a tuple of at least two values, got {self.values!r}")
        # what a tuning study can store and compare (Optuna's categorical values); a list or dict is not
        for value in self.values:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ConfigError(f"Choice values must be numbers, strings, flags or None, got {value!r}")

    def ends(self) -> list[Any]:
        return list(self.values)

    def describe(self) -> str:
        return " | ".join(map(str, self.values))

    def as_dict(self) -> dict[str, Any]:
        return {"type": "choice", "values": list(self.values)}


def _num(x: float) -> str:
    """A range end as people write it: 0.05, 20, 1e-04."""
    return f"{x:g}"


Param = Union[Float, Int, Choice]
KINDS = (Float, Int, Choice)


def _check_range(p: Any, low: Any, high: Any, types: tuple[type, ...]) -> None:
    kind = type(p).__name__
    for end in (low, high):
        if isinstance(end, bool) or not isinstance(end, types) or not math.isfinite(end):
            raise ConfigError(f"{kind} range ends must be finite {'integers' if types == (int,) else 'numbers'}, "
                              f"got {end!r}")
    if not low < high:
        raise ConfigError(f"{kind}({low}, {high}): low must be below high")


def check_space(what: str, space: Mapping[str, Any], params: Mapping[str, Any],
                build: Callable[[dict[str, Any]], Any]) -> None:
    """Refuse (ConfigError, one line) a space naming a parameter ``what`` lacks, or a range it cannot take.

    ``params``: the hyperparameters with their defaults; ``build(overrides)`` constructs the loss (and raises
    ConfigError for values it refuses)."""
    for name, p in space.items():
        if name not in params:
            raise ConfigError(f"{what}: search space names '{name}', which is not one of its hyperparameters"
                              f"{did_you_mean(name, params)} (it takes: {', '.join(params) or 'none'})")
        if not isinstance(p, KINDS):
            raise ConfigError(f"{what}: search space entry '{name}' must be Float, Int or Choice "
                              f"(kdzoo.space), got {p!r}")
        for value in p.ends():
            try:
                build({name: value})
            except ConfigError as exc:
                raise ConfigError(f"{what}: search space {name}={p} includes {value!r}, which it refuses "
                                  f"({exc})") from None


__all__ = ["Choice", "Float", "Int", "KINDS", "Param", "check_space"]
