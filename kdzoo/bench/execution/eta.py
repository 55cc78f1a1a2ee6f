"""How long the work left will take, from the speed of earlier runs of the same models.

Every finished run records ``images_per_second`` (its last epoch, per member of a cohort),
so runs in the store that trained the same student with the same teacher on the same
dataset tell how fast a new one will go. Runs with no such predecessor are counted as
unknown rather than guessed.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ...engine.runfolder import RESULT, read_config
from ..plan import estimate
from ..spec import RunSpec
from .store import RunStore

Key = tuple[str, str, str]


def speed_key(spec: RunSpec) -> Key:
    return spec.dataset, spec.student, spec.teacher or ""


def measured_speeds(store: RunStore) -> dict[Key, float]:
    """Mean images/s of the finished runs in ``store``, per (dataset, student, teacher model)."""
    seen: dict[Key, list[float]] = {}
    runs = store.runs
    for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
        try:
            record = json.loads((folder / RESULT).read_text())
        except (OSError, ValueError):
            continue
        config = read_config(folder)
        if not isinstance(record, dict) or config is None:   # damaged files: the sweep repairs them, not us
            continue
        ips = record.get("images_per_second")
        if record.get("status") != "finished" or not isinstance(ips, (int, float)) or not ips > 0:
            continue
        key = (config.get("dataset", ""), config.get("student", ""), config.get("teacher") or "")
        seen.setdefault(key, []).append(float(ips))
    return {k: sum(v) / len(v) for k, v in seen.items()}


@dataclass
class TimeLeft:
    seconds: float = 0.0     # training time of the runs whose speed is known, one after another
    known: int = 0           # runs with a measured speed
    unknown: int = 0         # runs without one (a model pair not trained yet here, or a dataset of unknown size)

    def describe(self, workers: int = 1) -> str:
        """One sentence; where some runs have no measured speed, the time is a lower bound and says so."""
        if not self.known:
            return ""
        runs = self.known + self.unknown
        when = f"{duration(self.seconds)} of training in one process"
        if workers > 1:
            when += f", about {duration(self.seconds / workers)} with {workers} workers"
        if not self.unknown:
            return f"estimated time left: {when} (speed of earlier runs of the same models)"
        return (f"estimated time left: more than {when}: that is for {self.known} of the {runs} runs left; the "
                f"other {self.unknown} have no earlier run of the same models to time them")


class SweepClock:
    """The time left of a running sweep, for its bar: each phase's runs (teachers first, then students)
    priced at the speed of their own models, over the workers that phase can keep busy.

    A speed is an earlier finished run's (``measured_speeds``, updated as runs finish), else the
    speed its runs show while they train (images through a student per second of one unit). The
    teacher's speed therefore never prices the students, nor one worker's the work that many will
    share: with neither known for some model pair, the time left is None ("eta ?"), not a guess."""

    def __init__(self, store: RunStore, specs: dict[str, RunSpec], phases: list[list[list[str]]],
                 workers: int = 1, sizes: dict[str, int] | None = None) -> None:
        self.store, self.specs, self.workers = store, specs, max(int(workers), 1)
        self.speeds = measured_speeds(store)
        # run -> (phase, unit, speed key, images); units as planned now (the launch may group them again)
        self.left = {h: (p, u, speed_key(specs[h]), estimate(specs[h], sizes)[0] or 0)
                     for p, units in enumerate(phases) for u, unit in enumerate(units) for h in unit}
        # a unit's runs -> [time of its first step, images in all, images after the first step (its speed)]
        self.live: dict[tuple[str, ...], list[float]] = {}

    def advance(self, unit: tuple[str, ...], images: float) -> None:
        """A unit trained ``images`` more (each member's images counted, as the sweep's bar does)."""
        if tuple(unit) not in self.live:
            self.live[tuple(unit)] = [time.monotonic(), images, 0.0]
        else:
            self.live[tuple(unit)][1] += images
            self.live[tuple(unit)][2] += images

    def finish(self, hashes: list[str]) -> None:
        """Runs ended: off the work left, and their recorded speed joins the known ones."""
        for h in hashes:
            self.left.pop(h, None)
        self.live = {u: v for u, v in self.live.items() if not set(u) & set(hashes)}
        self.speeds = measured_speeds(self.store)

    def seconds(self) -> float | None:
        now = time.monotonic()
        live_rate: dict[Key, list[float]] = {}     # key -> [images, unit-seconds] of the units training now
        done: dict[str, float] = {}                # run -> images it trained so far (its unit's, shared out)
        for unit, (start, images, timed) in self.live.items():
            runs = [h for h in unit if h in self.left]
            for h in runs:
                done[h] = images / len(runs)
                rate = live_rate.setdefault(self.left[h][2], [0.0, 0.0])
                rate[0] += timed / len(runs)
                rate[1] += (now - start) / len(runs)
        total = 0.0
        for phase in sorted({p for p, _, _, _ in self.left.values()}):
            runs = {h: v for h, v in self.left.items() if v[0] == phase}
            seconds = 0.0
            for h, (_, _, key, images) in runs.items():
                rate = live_rate.get(key, [0.0, 0.0])
                speed = self.speeds.get(key) or (rate[0] / rate[1] if rate[0] > 0 and rate[1] > 0 else None)
                if not speed:
                    return None
                seconds += max(images - done.get(h, 0.0), 0.0) / speed
            total += seconds / min(self.workers, len({u for _, u, _, _ in runs.values()}))
        return total


def time_left(store: RunStore, specs: list[RunSpec], sizes: dict[str, int] | None = None) -> TimeLeft:
    speeds = measured_speeds(store)
    out = TimeLeft()
    for spec in specs:
        images, _ = estimate(spec, sizes)
        speed = speeds.get(speed_key(spec))
        if images is None or speed is None:
            out.unknown += 1
        else:
            out.known += 1
            out.seconds += images / speed
    return out


def duration(seconds: float) -> str:
    """ "45 s", "12 min", "3.2 h"."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["SweepClock", "TimeLeft", "duration", "measured_speeds", "time_left"]
