"""Collapse: a run that learned (almost) nothing is an outcome of its own, not a low number.

A run is *collapsed* when its loss diverged (status ``diverged``) or when it ended within
``MARGIN`` of the way from chance to a perfect score: top-1 <= chance + MARGIN * (100 - chance),
chance = 100 / classes. On a 10-class problem that is 23.5%, on 100 classes 15.85%. A run there
predicts one or two classes; averaging it with seeds that learned would report a mean no seed has
and a spread that makes every test meaningless, so collapsed seeds are counted and shown apart,
and left out of the tests. A method with most of its seeds collapsed gets no verdict.
"""
from __future__ import annotations

import math

MARGIN = 0.15
DIVERGED = "diverged"


def threshold(classes: int | float | None) -> float:
    """The top-1 (%) at or below which a run counts as collapsed; NaN when the classes are unknown."""
    if classes is None or not classes == classes or classes < 2:
        return math.nan
    chance = 100.0 / float(classes)
    return chance + MARGIN * (100.0 - chance)


def collapsed(value: float, status: str, limit: float) -> bool:
    """Whether one run collapsed: diverged, or its top-1 at or below ``limit`` (a NaN limit checks divergence only)."""
    if status == DIVERGED:
        return True
    return bool(limit == limit and value == value and value <= limit)


def most(n_collapsed: int, n_ended: int) -> bool:
    """More than half of a method's ended seeds collapsed: the method gets no verdict."""
    return n_collapsed * 2 > n_ended


__all__ = ["DIVERGED", "MARGIN", "collapsed", "most", "threshold"]
