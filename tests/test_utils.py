"""kdzoo/utils, the floor under every layer: digests, JSON lines and the atomic copy (the atomic write and
its free-space check are in tests/test_store_transient.py, where a full disk is injected)."""
from __future__ import annotations

import hashlib
import os

from kdzoo.utils import file_sha256, jsonl_text, link_or_copy, read_jsonl, sha256_bytes


def test_digests_are_sha256_of_the_content_and_follow_a_changed_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc" * 1000)
    assert file_sha256(path) == hashlib.sha256(b"abc" * 1000).hexdigest() == sha256_bytes(b"abc" * 1000)
    path.write_bytes(b"abd" * 1000)
    os.utime(path, ns=(1, 1))     # a new version of the file (modification time), read again
    assert file_sha256(path) == hashlib.sha256(b"abd" * 1000).hexdigest()


def test_json_lines_round_trip_and_name_the_first_bad_line():
    records = [{"epoch": 1, "b": 2.5}, {"a": [1, 2], "epoch": 2}]
    text = jsonl_text(records)
    assert text == '{"b": 2.5, "epoch": 1}\n{"a": [1, 2], "epoch": 2}\n'   # keys sorted: equal records, equal bytes
    assert read_jsonl(text) == (records, None)
    assert read_jsonl(text.encode() + b'{"epoch": 3\n{"epoch": 4}\n') == (records, 3)


def test_link_or_copy_makes_a_complete_copy_in_one_rename(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_bytes(b"data")
    dst.write_bytes(b"old")
    link_or_copy(src, dst)
    assert dst.read_bytes() == b"data" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
