"""Rich progress bars that vanish when output is not a terminal (logs, CI, workers)."""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._bar: RichProgress | None = None
        self._depth = 0

    def __enter__(self) -> "Progress":
        if self.live and self._depth == 0:
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                                     transient=True)
            self._bar.start()
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._bar is not None:
            self._bar.stop()
            self._bar = None

    def task(self, description: str, total: int) -> Any:
        return self._bar.add_task(description, total=total) if self._bar is not None else None

    def advance(self, task: Any, n: int = 1) -> None:
        if task is not None and self._bar is not None:
            self._bar.advance(task, n)

    def done(self, task: Any) -> None:
        if task is not None and self._bar is not None:
            self._bar.remove_task(task)

    def print(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)
