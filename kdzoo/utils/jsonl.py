"""Strict JSON (null where Python would write NaN or Infinity, so any parser reads it) and JSON lines:
one object per line, keys sorted (so equal records give equal bytes)."""
from __future__ import annotations

import json
import math
from typing import Any


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN: no test accuracy yet, a diverged loss) as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    return obj


def json_text(obj: Any, **kw: Any) -> str:
    """Strict JSON text of ``obj``."""
    return json.dumps(strict(obj), allow_nan=False, **kw)


def jsonl_text(records: list[dict[str, Any]]) -> str:
    return "".join(json_text(r, sort_keys=True) + "\n" for r in records)


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


__all__ = ["json_text", "jsonl_text", "read_jsonl", "strict"]
