"""``kdzoo report OUT``: a self-contained ``report.html`` of a benchmark output folder.

``sources.py`` reads the folder's files (the adapter: which columns mean what), ``tables.py``
renders the tables, ``figures.py`` the Bokeh figures, ``page.py`` assembles the page. Bokeh is
optional (the 'report' extra): without it ``kdzoo report`` says how to install it, and
``kdzoo bench`` ends without a report.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ConfigError

INSTALL = "pip install 'kdzoo[report]'"
AUTO = "auto"


def check_installed() -> None:
    if importlib.util.find_spec("bokeh") is None:
        raise ConfigError(f"kdzoo report needs Bokeh: {INSTALL}")


def write_report(folder: str | Path, reference: str | Path | None = AUTO, path: str | Path | None = None) -> Path:
    """Write ``folder/report.html`` (or ``path``); ``reference``: a folder or leaderboard.csv to compare with,
    ``"auto"`` for ``results/<recipe name>/`` when it exists (as ``kdzoo bench`` does), None for none."""
    check_installed()
    from . import page, sources

    src = sources.read(folder)
    if reference == AUTO:
        reference = sources.default_reference(folder, src.name)
    if reference is not None:
        src.reference = sources.compare_with(Path(reference), Path(folder))
    return page.write(src, path)


__all__ = ["AUTO", "INSTALL", "check_installed", "write_report"]
