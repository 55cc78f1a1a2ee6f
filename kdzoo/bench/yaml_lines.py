"""YAML with line numbers: mappings and sequences that remember the line of each key and item,
so that a recipe's errors can point at ``FILE:LINE``."""
from __future__ import annotations

from typing import Any

import yaml

from ..errors import ConfigError

class LineMap(dict):
    """A mapping that remembers the line of each key (1-based)."""
    line: int = 0
    lines: dict


class LineSeq(list):
    """A sequence that remembers the line of each item (1-based)."""
    line: int = 0
    lines: list


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    out = LineMap()
    out.line, out.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _YamlProblem(line, "mapping keys must be plain names")
        if key in out:
            raise _YamlProblem(line, f"duplicate key '{key}' (first at line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
    return out


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LineSeq:
    out = LineSeq()
    out.line, out.lines = node.start_mark.line + 1, []
    for child in node.value:
        out.append(loader.construct_object(child, deep=True))
        out.lines.append(child.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


class _YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML keeping line numbers; syntax errors become one-line ConfigErrors."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except _YamlProblem as exc:
        raise ConfigError(f"{source}:{exc.line}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigError(f"{source}:{line}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


__all__ = ["LineMap", "LineSeq", "parse_yaml"]
