"""Progress bars and log lines for training runs and sweeps.

Bars appear only on a terminal; they move every optimizer step and show a
count, the elapsed time and an ETA from the measured speed (or, for a task that
brings its own estimate, from that: the sweep's, see bench/runner.py). A line is
as wide as the terminal (80 columns included): the description takes what the
other columns leave, and a long one is cut with an ellipsis rather than pushing
the count and the times off the screen. Log lines (one per finished epoch,
"resuming at epoch k of N") are printed with or without bars, so a log file of a
run without a terminal stays useful; on a terminal, epoch lines are left to the
bars and every other line (resumes, divergences) is printed above them.

A sweep shares one ``Progress`` between its own bar (all images left to train
through a student, so its ETA is the sweep's) and each run's bar (that run's
steps): ``step`` advances both. A run in a worker process reports through a
``QueueProgress`` (a few messages a second); the sweep's process ``relay``s
them into its bars.
"""
from __future__ import annotations

import re
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text

from . import terminal

BAR, COUNT, TIME, ETA = 8, 11, 7, 11   # bar, "done/total", elapsed 0:00:00, "eta 0:00:00"
OTHER_COLUMNS = BAR + COUNT + TIME + ETA + 4   # + 4 gaps: the description gets the rest (38 of 80 columns)
EPOCH_LINE = re.compile(r" epoch \d+/\d+: ")    # a trainer's per-epoch line (the bars show epochs)


def short(n: float) -> str:
    """1234 -> "1.23k", 4700000 -> "4.7M": counts of images stay a few characters wide."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e4)):
        if n >= size:
            return f"{n / size:.3g}{unit}" if unit != "k" else f"{n / 1e3:.0f}k"
    return f"{n:.0f}"


class CountColumn(ProgressColumn):
    """ "done/total" in at most 11 characters."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(width=11, no_wrap=True, justify="right"))

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else short(task.total)
        return Text(f"{short(task.completed)}/{total}", style="progress.download")


class EtaColumn(ProgressColumn):
    """ "eta 0:01:23": rich's estimate from the task's speed, or the task's own (a callable in its ``eta``
    field returning seconds, or None while it cannot tell: "eta ?")."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(width=ETA, no_wrap=True, justify="right"))
        self._rich = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        own = task.fields.get("eta")
        if own is None:
            return Text("eta ", style="progress.remaining") + self._rich.render(task)
        seconds = own()
        if seconds is None:
            return Text("eta ?", style="progress.remaining")
        minutes, sec = divmod(int(max(seconds, 0)), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"eta {hours}:{minutes:02d}:{sec:02d}", style="progress.remaining")


def columns(width: int = terminal.FALLBACK) -> tuple[Any, ...]:
    description = max(width - OTHER_COLUMNS, 20)
    return (TextColumn("{task.description}", table_column=Column(width=description, no_wrap=True,
                                                                 overflow="ellipsis")),
            BarColumn(bar_width=BAR), CountColumn(), TimeElapsedColumn(), EtaColumn())


class Progress:
    """``bars``: live bars (on a terminal only); ``lines``: print log lines (epochs, resumes)."""

    def __init__(self, enabled: bool = True, console: Console | None = None, *, lines: bool | None = None) -> None:
        self.console = console or terminal.console(stderr=True)
        self.enabled = enabled
        self.lines = enabled if lines is None else lines
        self.live = enabled and self.console.is_terminal
        self._bar: RichProgress | None = None
        self._depth = 0
        self.sweep: Any = None        # the sweep's task, advanced by images as runs train
        self._remote: dict[tuple[Any, Any], Any] = {}   # (unit, worker's task) -> task here
        self.label = ""               # what the runs' bars call the current run (default: its methods)
        self.unit: Any = None         # the unit training in this process, for ``watch``
        self.watch: Any = None        # watch(unit, images): told of every step's images (the sweep's clock)

    def __enter__(self) -> "Progress":
        if self.live and self._depth == 0:
            # speeds averaged over 10 minutes: a sweep's bar moves in jumps when workers finish units
            self._bar = RichProgress(*columns(self.console.width), console=self.console, transient=True,
                                     speed_estimate_period=600)
            self._bar.start()
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._bar is not None:
            self._bar.stop()
            self._bar = None

    def task(self, description: str, total: float, **fields: Any) -> Any:
        return self._bar.add_task(description, total=total, **fields) if self._bar is not None else None

    def describe(self, task: Any, description: str) -> None:
        if task is not None and self._bar is not None:
            self._bar.update(task, description=description)

    def update(self, task: Any, **fields: Any) -> None:
        if task is not None and self._bar is not None:
            self._bar.update(task, **fields)

    def advance(self, task: Any, n: float = 1) -> None:
        if task is not None and self._bar is not None:
            self._bar.advance(task, n)

    def step(self, task: Any, images: int) -> None:
        """One optimizer step of a run: its bar moves by one, the sweep's by the images trained on."""
        if self._bar is not None:
            if task is not None:
                self._bar.advance(task, 1)
            if self.sweep is not None:
                self._bar.advance(self.sweep, images)
            if self.watch is not None:
                self.watch(self.unit, images)

    def done(self, task: Any) -> None:
        if task is not None and self._bar is not None:
            self._bar.remove_task(task)

    def print(self, message: str, problem: bool = False) -> None:
        """A log line, wrapped between words; a ``problem`` only on a terminal (engine/terminal.py)."""
        if self.lines:
            terminal.line(self.console, message, problem=problem)

    def log(self, message: str, problem: bool = False) -> None:
        """A trainer's line: printed, except epoch lines while bars show the epochs."""
        if not (self.live and EPOCH_LINE.search(message)):
            self.print(message, problem=problem)

    def relay(self, event: tuple[Any, ...]) -> None:
        """Show what a worker's ``QueueProgress`` sent: (unit, kind, task, *data)."""
        unit, kind, task, *data = event
        key = (unit, task)
        if kind == "task":
            self._remote[key] = self.task(data[0], data[1])
        elif kind == "describe":
            self.describe(self._remote.get(key), data[0])
        elif kind == "step":
            self.advance(self._remote.get(key), data[0])
            self.advance(self.sweep, data[1])
            if self.watch is not None:
                self.watch(unit, data[1])
        elif kind == "done":
            self.done(self._remote.pop(key, None))
        elif kind == "log":   # (message, problem): a worker's problem line is laid out as one printed here
            self.log(*data)

    def forget(self, unit: Any) -> None:
        """A unit ended (or its worker died): drop whatever bars it left."""
        for key in [k for k in self._remote if k[0] == unit]:
            self.done(self._remote.pop(key))


class QueueProgress(Progress):
    """A worker's progress: no bars of its own; the run's bar and log lines are sent to the sweep's process
    (``relay``), which draws the bar and prints the lines its bars do not show."""

    EVERY = 0.5   # seconds between step messages

    def __init__(self, queue: Any, unit: Any, label: str = "", *, lines: bool = False) -> None:
        super().__init__(enabled=False, lines=lines)
        self.queue, self.unit, self.label = queue, unit, label
        self._tasks, self._steps, self._images, self._flushed = 0, 0, 0, 0.0

    def task(self, description: str, total: float) -> Any:
        self._tasks += 1
        self._send("task", self._tasks, description, total)
        return self._tasks

    def describe(self, task: Any, description: str) -> None:
        self._send("describe", task, description)

    def step(self, task: Any, images: int) -> None:
        self._steps += 1
        self._images += images
        if time.monotonic() - self._flushed >= self.EVERY:
            self._flush(task)

    def done(self, task: Any) -> None:
        self._flush(task)
        self._send("done", task)

    def print(self, message: str, problem: bool = False) -> None:
        self._send("log", None, message, problem)

    def _flush(self, task: Any) -> None:
        self._flushed = time.monotonic()
        if self._steps:
            self._send("step", task, self._steps, self._images)
            self._steps = self._images = 0

    def _send(self, kind: str, task: Any, *data: Any) -> None:
        try:  # progress must never fail a run
            self.queue.put_nowait((self.unit, kind, task, *data))
        except Exception:
            pass
