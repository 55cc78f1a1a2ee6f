"""Command-line options derived from a settings dataclass, and the help that shows every default.

``kdzoo train``'s training options are TrainConfig's fields: name, type, default and help
(the field's ``help`` metadata) come from the dataclass, so a default is written once and the
command line cannot drift from a recipe's ``train:`` block. ``--name-with-dashes`` for a field
``name_with_dashes``; a flag for a bool (``--no-NAME`` where it defaults to true); a list of
integers takes several values.
"""
from __future__ import annotations

import argparse
import dataclasses
import textwrap
import typing
from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already speaks of it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if (not action.option_strings or "default" in text or d is None or d is False or d is argparse.SUPPRESS
                or isinstance(action, argparse._StoreFalseAction) or d == []):
            return text
        return f"{text} (default %(default)s)" if text else "default %(default)s"

    def _split_lines(self, text: str, width: int) -> list[str]:
        # never break a name at its hyphen ("fashion-mnist", "--dot-delta")
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


METAVARS = {int: "N", float: "X"}   # short placeholders keep the usage line compact


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_options(parser: Any, cls: type) -> None:
    """One option per field of ``cls`` (see the module docstring) on ``parser`` (a parser or an argument group)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        text = str(f.metadata.get("help", "")).replace("%", "%%")
        kind = hints[f.name]
        if kind is bool and default:
            parser.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                                default=True, help=f"turn off (default on): {text}")
        elif kind is bool:
            parser.add_argument(_option(f.name), dest=f.name, action="store_true", help=text)
        elif typing.get_origin(kind) is list:
            (item,) = typing.get_args(kind)
            parser.add_argument(_option(f.name), dest=f.name, type=item, nargs="*", default=default, help=text,
                                metavar=METAVARS.get(item))
        else:
            args = [a for a in typing.get_args(kind) if a is not type(None)]   # int | None -> int
            kind = args[0] if args else kind
            parser.add_argument(_option(f.name), dest=f.name, type=kind, default=default, help=text,
                                metavar=METAVARS.get(kind))


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` as parsed by the options of ``add_dataclass_options``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}


__all__ = ["HelpFormatter", "add_dataclass_options", "dataclass_values"]
