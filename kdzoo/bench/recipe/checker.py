"""A generic checker of parsed YAML: shapes (mapping, list, string, number, boolean) and type hints,
raising one-line ``FILE:LINE: KEY.PATH: problem`` errors. Nothing in it knows about recipes."""
from __future__ import annotations

import types
import typing
from typing import Any

from ...errors import ConfigError, did_you_mean
from .yaml_lines import LineMap, LineSeq

Path_ = tuple  # a key path: ("methods", 2, "args", "temperature")


def format_path(path: Path_) -> str:
    out = ""
    for k in path:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


class Checker:
    """Holds the parsed tree so that any key path can be turned into a file line."""

    def __init__(self, source: str, root: Any) -> None:
        self.source = source
        self.root = root

    def line(self, path: Path_) -> int:
        node, line = self.root, getattr(self.root, "line", 1)
        for key in path:
            if isinstance(node, LineMap) and key in node:
                line, node = node.lines[key], node[key]
            elif isinstance(node, LineSeq) and isinstance(key, int) and 0 <= key < len(node):
                line, node = node.lines[key], node[key]
            else:
                break
        return line or 1

    def error(self, path: Path_, message: str) -> ConfigError:
        message = " ".join(str(message).split())  # always one line
        where = f"{format_path(path)}: " if path else ""
        return ConfigError(f"{self.source}:{self.line(path)}: {where}{message}")

    # -- shapes
    def mapping(self, value: Any, path: Path_, allowed: tuple[str, ...] | None = None,
                required: tuple[str, ...] = ()) -> dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping ({{key: value}}), got {_kind(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise self.error((*path, key), f"unknown key '{key}'{did_you_mean(str(key), allowed)} "
                                                   f"(allowed: {', '.join(allowed)})")
        for key in required:
            if key not in value:
                raise self.error(path, f"missing required key '{key}'")
        return value

    def sequence(self, value: Any, path: Path_, *, scalar_ok: bool = False) -> list:
        if scalar_ok and isinstance(value, (str, int)) and not isinstance(value, bool):
            return [value]
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, path: Path_, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.error(path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def number(self, value: Any, path: Path_, *, integer: bool = False, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> Any:
        number = numeric(value, integer)
        if number is None:
            raise self.error(path, f"expected {'an integer' if integer else 'a number'}, got {_kind(value)}")
        return self._range(number, path, low, high, low_open)

    def _range(self, value: Any, path: Path_, low, high, low_open) -> Any:
        if low is not None and (value < low or (low_open and value == low)):
            raise self.error(path, f"must be {'>' if low_open else '>='} {low}, got {value}")
        if high is not None and value > high:
            raise self.error(path, f"must be <= {high}, got {value}")
        return value

    def boolean(self, value: Any, path: Path_) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {_kind(value)}")
        return value

    def typed(self, value: Any, hint: Any, path: Path_) -> Any:
        """Check ``value`` against a type hint (int, float, str, bool, list[X], X | None, dict, Any)."""
        ok, out = _coerce(value, hint)
        if not ok:
            raise self.error(path, f"expected {_hint_name(hint)}, got {_kind(value)}")
        return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}' (a string)"
    return f"{value!r} ({type(value).__name__})"


def numeric(value: Any, integer: bool) -> Any:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if integer:
            return int(value) if value.is_integer() else None
        return value
    if isinstance(value, str) and not integer:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _hint_name(hint: Any) -> str:
    if hint is Any:
        return "anything"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_hint_name(a) for a in typing.get_args(hint))
    if origin is list:
        (arg,) = typing.get_args(hint) or (Any,)
        return f"a list of {_hint_name(arg)}"
    if origin is dict or hint is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    if hint is Any:
        return True, value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            return (type(None) in args), None
        for arg in args:
            if arg is type(None):
                continue
            ok, out = _coerce(value, arg)
            if ok:
                return True, out
        return False, value
    if origin is list or hint is list:
        (arg,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list):
            return False, value
        items = [_coerce(v, arg) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if origin is dict or hint is dict:
        return isinstance(value, dict), (dict(value) if isinstance(value, dict) else value)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        out = numeric(value, integer=True)
        return out is not None, out
    if hint is float:
        out = numeric(value, integer=False)
        return out is not None, (float(out) if out is not None else value)
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint) if isinstance(hint, type) else True, value


__all__ = ["Checker", "Path_", "format_path", "numeric"]
