"""JSON lines: one JSON object per line, keys sorted (so equal records give equal bytes)."""
from __future__ import annotations

import json
from typing import Any


def jsonl_text(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def read_jsonl(data: bytes | str) -> tuple[list[Any], int | None]:
    """(the parsed lines, the 1-based number of the first line that is not JSON, or None)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError:
            return out, i
    return out, None


__all__ = ["jsonl_text", "read_jsonl"]
