"""YAML with line numbers: mappings and sequences that remember the line of each key and item,
so that a recipe's errors can point at ``FILE:LINE``."""
from __future__ import annotations

from typing import Any

import yaml

from ...errors import ConfigError

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


MAX_DEPTH = 50            # nesting levels: a recipe needs about six; PyYAML recurses once per level
MAX_BYTES = 1 << 20       # a recipe is a few kilobytes


def check_size(nbytes: int, source: str) -> None:
    if nbytes > MAX_BYTES:
        raise ConfigError(f"{source}: {nbytes / 1e6:.1f} MB is more than a recipe may hold "
                          f"({MAX_BYTES // (1 << 20)} MB)")


def _check_depth(text: str, source: str) -> None:
    """Refuse deep nesting from the event stream (which does not recurse), before the loader would."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{source}:{event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels "
                                  f"deep (a recipe needs a handful)")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML keeping line numbers; syntax errors and oversized or too deeply nested
    documents become one-line ConfigErrors."""
    check_size(len(text.encode("utf-8", errors="replace")), source)
    try:
        _check_depth(text, source)
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except RecursionError:   # a limit above missed a shape that recurses: still one line
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except _YamlProblem as exc:
        raise ConfigError(f"{source}:{exc.line}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise ConfigError(f"{source}:{line}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None


__all__ = ["MAX_BYTES", "MAX_DEPTH", "LineMap", "LineSeq", "check_size", "parse_yaml"]
