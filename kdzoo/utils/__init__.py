"""The floor under every layer: file writes that never leave a partial file, content hashes, JSON lines.

Nothing here knows about runs, losses or recipes; it imports nothing of kdzoo but ``errors``,
so every layer (the registries and data modules included) may use it.
"""
from __future__ import annotations

from .atomic import (LARGE_WRITE, atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text,
                     check_free_space, link_or_copy)
from .hashing import file_sha256, sha256_bytes
from .jsonl import json_text, jsonl_text, read_jsonl, strict

__all__ = ["LARGE_WRITE", "atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "check_free_space", "file_sha256", "json_text", "jsonl_text", "link_or_copy", "read_jsonl",
           "sha256_bytes", "strict"]
