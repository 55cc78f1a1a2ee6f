"""docs/methods.md agrees with the losses' signatures.

- Its defaults table is what docs/defaults_table.py writes from the registered losses now
  (change a default and this fails until the table is regenerated).
- Every registered loss has a section (a ``## `` heading naming it).
- The hand-written "Defaults ..." sentences of the sections: each ``name = value`` (or
  ``name value``) in them whose name is one of the section's first loss's hyperparameters (``T``
  standing for ``temperature``), parentheses left out, equals that hyperparameter's default.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import kdzoo
from kdzoo.registry import LOSSES

REPO = Path(__file__).resolve().parents[1]
METHODS = REPO / "docs" / "methods.md"
ALIASES = {"T": "temperature"}


def _script():
    spec = importlib.util.spec_from_file_location("defaults_table", REPO / "docs" / "defaults_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sections() -> list[tuple[list[str], str]]:
    """(loss names in the heading, section text) of every ``## `` section that names a registered loss."""
    out = []
    for sec in re.split(r"^## ", METHODS.read_text(encoding="utf-8"), flags=re.M)[1:]:
        names = [n.strip(" `") for n in re.split(r"[,:]", sec.splitlines()[0])]
        names = [n for n in names if n in LOSSES]
        if names:
            out.append((names, sec))
    return out


def test_the_defaults_table_is_the_one_the_signatures_give():
    script = _script()
    text = METHODS.read_text(encoding="utf-8")
    assert script.current(text), "docs/methods.md has lost its defaults table markers"
    assert script.current(text) == script.block(), "run: python docs/defaults_table.py"
    assert "| `kd` | label | temperature 4, ce_weight 0.1, kd_weight 0.9, standardize false |" in text


def test_every_registered_loss_has_a_section():
    named = {n for names, _ in _sections() for n in names}
    builtin = {n for n in LOSSES.names() if LOSSES.entry(n).source == "kdzoo"}
    assert builtin - named == set()


def _stated_defaults(section: str, keys: set[str]) -> list[tuple[str, float]]:
    found = []
    for m in re.finditer(r"\bDefaults\b(.*?)(?:\.\s|;|\n\n)", section, flags=re.S):
        clause = re.sub(r"\([^()]*\)", "", m.group(1))
        for chain in re.finditer(r"((?:\b[A-Za-z_]+\b\s*=\s*)+)(-?\d[\d.]*(?:e-?\d+)?)", clause):
            found += [(k, float(chain.group(2))) for k in re.findall(r"([A-Za-z_]+)\s*=", chain.group(1))]
        found += [(k, float(v)) for k, v in re.findall(r"\b([A-Za-z_]+) (-?\d[\d.]*)\b", clause)]
    return [(ALIASES.get(k, k), v) for k, v in found if ALIASES.get(k, k) in keys]


def test_the_defaults_sentences_agree_with_the_signatures():
    checked, wrong = 0, []
    for names, section in _sections():
        defaults = kdzoo.loss_info(names[0])["defaults"]
        for key, value in _stated_defaults(section, set(defaults)):
            checked += 1
            if defaults[key] is None or float(defaults[key]) != value:
                wrong.append(f"{names[0]}: docs say {key} {value:g}, the signature {defaults[key]}")
    assert not wrong, "; ".join(wrong)
    assert checked >= 35   # the sentences were read (39 values in 11 sections when this test was written)


def test_a_changed_default_would_be_caught():
    section = "Defaults T = 3, ce_weight = 0.1. Later: T = 9 elsewhere."
    assert _stated_defaults(section, {"temperature", "ce_weight"}) == [("temperature", 3.0), ("ce_weight", 0.1)]
