"""``kdzoo list losses --space``: each loss's search space, one row per searched hyperparameter."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .. import list_losses
from ..engine import terminal
from ..registry import LOSSES

NONE = "none: tuned over the shared training settings only"


def print_spaces(console: Console | None = None) -> None:
    """Print every registered loss's checked search space (a bad declaration raises ConfigError)."""
    table = Table(title="kdzoo search spaces")
    for col in ("loss", "hyperparameter", "searched over", "default"):
        table.add_column(col, overflow="fold")
    for name in list_losses():
        space = LOSSES.search_space(name)
        defaults = LOSSES.space_defaults(name)
        if not space:
            table.add_row(name, "", NONE, "", end_section=True)
        for i, (param, p) in enumerate(space.items()):
            table.add_row(name if i == 0 else "", param, p.describe(), str(defaults[param]),
                          end_section=i == len(space) - 1)
    table.caption = "sources of the ranges: docs/methods.md; one loss: loss_info(NAME)['space']"
    (console or terminal.console()).print(table)   # as wide as the terminal, like every table kdzoo prints
