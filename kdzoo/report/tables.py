"""HTML tables of a report: each cell as ``sources.Column`` says, with the number it sorts on.

Cells carry ``data-sort`` (a number) where the column is numeric, so report.js sorts them as
numbers whatever their text ("76.66 ± 0.72", "+1.79 [+0.38, +3.20] (n=5)", "tied"); an empty
or missing value reads "—" and sorts last.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any

import pandas as pd

from .sources import Column

DASH = "—"
LIST_SHOWN = 4        # a longer list of names shows its count, the names in the cell's tooltip
WRAP = 40             # text longer than this may wrap (notes, messages); the rest stays on one line


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _text(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return str(x).strip()


def _f(x: float, digits: int, sign: bool = False) -> str:
    return DASH if x != x else f"{x:{'+' if sign else ''}.{digits}f}"


def cell(col: Column, row: pd.Series) -> tuple[str, float | None, str, str]:
    """(text, sort number or None for text sorting, css class, tooltip) of ``col`` in ``row``."""
    get = [row.get(s) for s in col.sources]
    kind = col.kind
    if kind == "number":
        v = _num(get[0])
        return _f(v, col.digits), v, "num", ""
    if kind == "mean_std":
        mean, std = _num(get[0]), _num(get[1]) if len(get) > 1 else math.nan
        text = _f(mean, col.digits) + (f" ± {_f(std, col.digits)}" if std == std and mean == mean else "")
        return text, mean, "num", ""
    if kind == "interval":
        d, low, high = (_num(g) for g in get[:3])
        n = _num(get[3]) if len(get) > 3 else math.nan
        text = _f(d, col.digits, sign=True)
        if d == d and low == low:
            text += f" [{_f(low, col.digits, True)}, {_f(high, col.digits, True)}]"
        if d == d and n == n:
            text += f" (n={int(n)})"
        return text, d, "num", ""
    if kind == "rank":
        shown = next((t for t in (_text(g) for g in get) if t), "")
        numbers = [_num(g) for g in get]
        key = next((v for v in reversed(numbers) if v == v), math.nan)
        if re.fullmatch(r"\d+(\.0+)?", shown):
            shown = str(int(float(shown)))
        return shown or DASH, key, "num", ""
    if kind == "count":
        a, b = _num(get[0]), _num(get[1])
        detail = _text(get[2]) if len(get) > 2 else ""
        return (DASH if a != a else f"{int(a)}/{_f(b, 0)}" + (f", {detail}" if detail else "")), a, "num", ""
    if kind == "list":
        names = [n for n in re.split(r";\s*", _text(get[0])) if n]
        if len(names) > LIST_SHOWN:
            return f"{len(names)} methods", float(len(names)), "num", "; ".join(names)
        return ", ".join(names) or "none", float(len(names)), "", ""
    text = _text(get[0])
    if kind == "verdict":
        return text or DASH, None, "verdict v-" + re.sub(r"[^a-z]+", "-", text.lower()).strip("-"), ""
    return text or DASH, None, "wrap" if len(text) > WRAP else "", ""


def table(cols: list[Column], df: pd.DataFrame, *, classes: str = "sortable filterable", caption: str = "",
          marked: str = "", attrs: str = "") -> str:
    """A ``<table>``; ``marked``: the header of the column the recipe ranks by gets " (ranked)"."""
    head = []
    for c in cols:
        title = f' title="{html.escape(c.note)}"' if c.note else ""
        label = c.header + (" (ranked)" if marked and c.sources[0] == marked else "")
        numeric = c.kind not in ("text", "verdict")
        head.append(f'<th scope="col"{title} data-kind="{"num" if numeric else "text"}">{html.escape(label)}</th>')
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            text, key, cls, tip = cell(c, row)
            sort = "" if key is None else f' data-sort="{key if key == key else ""}"'
            klass = f' class="{cls}"' if cls else ""
            title = f' title="{html.escape(tip)}"' if tip else ""
            cells.append(f"<td{klass}{sort}{title}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table class="{classes}"{attrs}>{cap}<thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def plain(header: list[str], rows: list[list[str]], classes: str = "sortable", verdict: int | None = None) -> str:
    """A table of ready-made strings (``kdzoo compare``'s rows); column ``verdict`` is coloured."""
    cols = [Column(h, "verdict" if i == verdict else "text", (str(i),)) for i, h in enumerate(header)]
    return table(cols, pd.DataFrame([[*r] for r in rows], columns=[str(i) for i in range(len(header))]),
                 classes=classes)


__all__ = ["cell", "plain", "table"]
