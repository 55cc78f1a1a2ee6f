"""Write the defaults table of docs/methods.md from the registered losses' signatures.

    python docs/defaults_table.py           # rewrite the table in docs/methods.md
    python docs/defaults_table.py --check   # exit 1 (and say so) when the file's table is out of date

The table lies between the two marker lines below; everything else in methods.md is written by
hand. tests/test_methods_doc.py fails when the file's table differs from what this prints, so a
changed default cannot go unnoticed in the docs.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METHODS = ROOT / "docs" / "methods.md"
BEGIN = "<!-- defaults table: written by docs/defaults_table.py from each loss's signature; do not edit -->"
END = "<!-- end of the defaults table -->"


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, bool) or v is None:
        return str(v).lower() if v is not None else "none"
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def table() -> str:
    """The markdown table: every loss kdzoo registers, its teacher access (and needs), its defaults."""
    sys.path.insert(0, str(ROOT))
    import kdzoo
    from kdzoo.registry import LOSSES

    rows = ["| loss | teacher access | defaults |", "|---|---|---|"]
    for name in LOSSES.names():
        if LOSSES.entry(name).source != "kdzoo":
            continue
        info = kdzoo.loss_info(name)
        access = " + ".join([info["requires"], *info["needs"]])
        defaults = ", ".join(f"{k} {_value(v)}" for k, v in info["defaults"].items())
        rows.append(f"| `{name}` | {access} | {defaults} |")
    return "\n".join(rows)


def block() -> str:
    return f"{BEGIN}\n{table()}\n{END}"


def current(text: str) -> str:
    """The table block as it stands in ``text`` (methods.md), markers included; "" when absent."""
    if BEGIN not in text or END not in text:
        return ""
    start = text.index(BEGIN)
    return text[start:text.index(END, start) + len(END)]


def main(argv: list[str]) -> int:
    text = METHODS.read_text(encoding="utf-8")
    old, new = current(text), block()
    if not old:
        print(f"{METHODS}: no defaults table between its marker lines", file=sys.stderr)
        return 1
    if "--check" in argv:
        if old != new:
            print(f"{METHODS}: the defaults table is out of date; run python docs/defaults_table.py", file=sys.stderr)
            return 1
        return 0
    METHODS.write_text(text.replace(old, new), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
