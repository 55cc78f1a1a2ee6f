"""How long the work left will take, from the speed of earlier runs of the same models.

Every finished run records ``images_per_second`` (its last epoch, per member of a cohort),
so runs in the store that trained the same student with the same teacher on the same
dataset tell how fast a new one will go. Runs with no such predecessor are counted as
unknown rather than guessed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..engine.runfolder import RESULT, read_config
from .run import RunSpec
from .store import RunStore
from .sweep import estimate

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


__all__ = ["TimeLeft", "duration", "measured_speeds", "time_left"]
