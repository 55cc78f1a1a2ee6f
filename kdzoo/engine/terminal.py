"""How wide kdzoo's output may be: one rule for every table, bar and line the command line prints.

The width is ``$COLUMNS`` when it is set (as shells and ``COLUMNS=80 kdzoo ...`` set it), else
the terminal's width, else 80 (a pipe or a log file): the rule of ``shutil.get_terminal_size``.
Nothing is printed wider. Tables (``print_table``) take the first layout that fits: one line
per row; else each cell's detail (an interval, a seed count) under its value; else the long
free-text columns (notes) as lines under the table, with details beside or under values.
Log lines (``say``, ``line``) wrap between words. A line that reports a problem (an error, a warning, a run
that failed or was left unfinished) wraps only on a terminal: piped or logged, it stays one unbroken line, so
``grep`` and scripts find it whole, with the file it names (``problem=True``; ``problem_text`` for text that
is written by something else, such as Python's warnings).
"""
from __future__ import annotations

import shutil
import sys
import textwrap
from typing import Sequence, TextIO, Union

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

FALLBACK = 80
MIN_WIDTH = 40

# a cell: its text, or (value, detail), shown "value detail" on one line or the detail below the value
Cell = Union[str, tuple[str, str]]


def width() -> int:
    """Columns available to kdzoo's output (at least MIN_WIDTH, so a layout never degenerates)."""
    return max(shutil.get_terminal_size((FALLBACK, 24)).columns, MIN_WIDTH)


def console(stderr: bool = False, file: TextIO | None = None) -> Console:
    """A rich console as wide as ``width()``, on stdout (or stderr, or ``file``)."""
    return Console(stderr=stderr, file=file, width=width(), highlight=False, emoji=False)


def line(out: Console, message: str, *, problem: bool = False) -> None:
    """Print ``message`` on ``out``, wrapped between words to its width; a ``problem`` only on a terminal."""
    out.print(message, highlight=False, soft_wrap=problem and not out.is_terminal)


def say(message: str, *, stderr: bool = False, markup: bool = False, problem: bool = False) -> None:
    """Print ``message`` wrapped between words to ``width()`` (a ``problem``: only on a terminal, see the module
    docstring); ``markup``: rich colour tags like [red]."""
    out = sys.stderr if stderr else sys.stdout
    line(Console(file=out, width=width(), highlight=False, markup=markup, emoji=False), message, problem=problem)


def problem_text(text: str, stream: TextIO | None = None) -> str:
    """``text`` (plain, one line) laid out as a problem line on ``stream`` (default stderr): wrapped between
    words on a terminal, unchanged otherwise."""
    out = Console(file=stream or sys.stderr, width=width(), highlight=False, markup=False, emoji=False)
    if not out.is_terminal:
        return text
    with out.capture() as captured:
        out.print(text)
    return captured.get().rstrip("\n")


def _cell(cell: Cell, stacked: bool) -> str:
    if isinstance(cell, tuple):
        value, detail = cell
        return value if not detail else f"{value}{chr(10) if stacked else ' '}{detail}"
    return cell


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str = "", caption: str = "",
          stacked: bool = False, right: Sequence[str] = ()) -> Table:
    """A compact rich table (no outer frame, a rule under the header); ``right``: right-aligned headers."""
    t = Table(title=title or None, caption=caption or None, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
              collapse_padding=True, title_justify="left", caption_justify="left")
    for h in headers:   # "fold": a cell too long for its column breaks, it is never cut short
        t.add_column(h, justify="right" if h in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*(_cell(c, stacked) for c in row))
    return t


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str = "", caption: str = "",
                spill: Sequence[str] = (), right: Sequence[str] = (), out: Console | None = None) -> None:
    """Print a table in the first layout that fits the console (see the module docstring).

    ``spill``: headers of free-text columns that may move under the table as "FIRST CELL: text" lines."""
    out = out or console()
    keep = [i for i, h in enumerate(headers) if h not in spill]
    layouts = [(True, False), (True, True)] + ([(False, False), (False, True)] if len(keep) < len(headers) else [])
    for all_columns, stacked in layouts:
        cols = range(len(headers)) if all_columns else keep
        t = table([headers[i] for i in cols], [[r[i] for i in cols] for r in rows], title=title,
                  caption=caption, stacked=stacked, right=right)
        if Measurement.get(out, out.options.update_width(10_000), t).maximum <= out.width:
            break
    out.print(t)
    if not all_columns:
        for i, h in enumerate(headers):
            lines = [textwrap.fill(f"{_cell(r[0], False)}: {_cell(r[i], False)}", out.width, initial_indent="  ",
                                   subsequent_indent="    ", break_on_hyphens=False)
                     for r in rows if i not in keep and r[i]]
            for text in [f"{h}:"] * bool(lines) + lines:
                out.print(text, highlight=False, markup=False, soft_wrap=True)


__all__ = ["FALLBACK", "Cell", "console", "line", "print_table", "problem_text", "say", "table", "width"]
