"""Run a sweep: plan -> preflight -> teachers -> students -> leaderboard.

``run_bench`` is the Python entry point behind ``kdzoo bench``:

1. expand the recipe (``sweep.expand``) and write ``OUT/recipe.yaml`` and ``OUT/plan.json``;
2. preflight (only when something is left to run): the dataset loads, teacher
   checkpoints exist and fit their models, every model fits the data;
3. train the teachers the sweep owns, then the students whose teacher is ready,
   through a launcher; runs that are done are skipped, runs locked by another
   process are left to it and waited for at the end (and taken over if that
   process died without finishing them);
4. rebuild the leaderboard.

Ctrl-C stops the sweep; finished runs are kept and the next call resumes the
others from their last checkpoints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..engine.runfolder import COMPLETED, DIVERGED, ENDED, FAILED, FINISHED
from ..errors import CheckpointError, ConfigError
from . import leaderboard
from .launch import LOCKED, SKIPPED, LocalLauncher, SlurmLauncher, make_payload
from .recipe import load_recipe
from .recipe_types import Recipe, SlurmSettings
from .run import build_student, check_model_fits, load_teacher_weights
from .store import RunStore, check_done_run
from .sweep import STUDENT_ROLE, TEACHER_ROLE, Plan, expand, make_units

MAX_ROUNDS = 5


@dataclass
class SweepReport:
    out: Path
    plan: Plan
    statuses: dict[str, str] = field(default_factory=dict)     # run hash -> status at the end
    ran: list[str] = field(default_factory=list)                # runs this call trained
    skipped_done: int = 0
    stopped: str = ""                                           # why --fail-fast stopped the sweep
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.stopped and all(s in COMPLETED for s in self.statuses.values())


def describe(plan: Plan, h: str) -> str:
    e = next(e for e in plan.entries if e.hash == h)
    if e.role == TEACHER_ROLE:
        return f"teacher {e.teacher_model}"
    pair = f"{e.teacher_model}→{e.student}" if e.access != "none" else e.student
    return f"{e.label} {pair}" + (f" [{e.access}]" if e.access not in ("none", "logits") else "") + f" s{e.seed}"


def default_out(recipe: Recipe) -> Path:
    return Path("results") / recipe.name


def preflight(recipe: Recipe, plan: Plan, todo: list[str], data_root: str | None) -> None:
    """Fail early, with one line, when the data, a teacher checkpoint or a model cannot work."""
    from ..data import build_dataset
    from .. import build_model
    if not todo:
        return
    bundle = build_dataset(recipe.dataset, data_root=data_root)  # DataNotFoundError: the one-sentence data message
    needed = {plan.specs[h].teacher_ckpt for h in todo if plan.specs[h].teacher_ckpt and not plan.specs[h].teacher_run}
    for name, t in recipe.teachers.items():
        if t.ckpt is None or t.ckpt not in needed:
            continue
        if not Path(t.ckpt).is_file():
            raise CheckpointError(f"teacher checkpoint for '{name}' not found: {t.ckpt} "
                                  f"(teachers.{name}.ckpt in {recipe.path})")
        model = build_model(t.model, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                            image_size=bundle.image_size)
        load_teacher_weights(model, t.ckpt)
        check_model_fits(t.model, model, bundle)
    seen = set()
    for h in todo:
        spec = plan.specs[h]
        if spec.student not in seen:
            seen.add(spec.student)
            build_student(spec, bundle)


class _Display:
    """Rich progress over the sweep (runs done) and, in-process, over the current run's epochs."""

    EPOCH = re.compile(r" epoch (\d+)/(\d+)")

    def __init__(self, total: int, enabled: bool, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=True, disable=not self.live)
        self.sweep = self.bar.add_task("runs", total=total)
        self.current: Any = None

    def __enter__(self) -> "_Display":
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def print(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, highlight=False)

    def start_unit(self, description: str, epochs: int) -> None:
        if self.current is not None:
            self.bar.remove_task(self.current)
        self.current = self.bar.add_task(description, total=epochs)
        self.epoch = 0

    def trainer_log(self, message: str) -> None:
        try:  # a display problem must never fail a run
            m = self.EPOCH.search(message)
            if m is None or not self.live:   # without a terminal (logs, CI) every epoch gets its line
                self.print(message)
            elif self.current is not None and int(m.group(1)) > self.epoch:
                self.epoch = int(m.group(1))
                self.bar.update(self.current, completed=self.epoch)
        except Exception:
            pass

    def unit_done(self, n: int) -> None:
        if self.current is not None:
            self.bar.remove_task(self.current)
            self.current = None
        self.bar.advance(self.sweep, n)


def run_bench(recipe: Recipe | str | Path, out: str | Path | None = None, *, launcher: str = "local",
              workers: int = 1, cohort: str = "auto", fail_fast: bool = False, data_root: str | None = None,
              device: str = "auto", retry_failed: bool = False, slurm: dict[str, Any] | None = None,
              slurm_cluster: str | None = None, executor: Any = None, progress: bool = True,
              console: Console | None = None) -> SweepReport:
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"--launcher must be local or slurm, got '{launcher}'")
    if cohort not in ("auto", "off"):
        raise ConfigError(f"--cohort must be auto or off, got '{cohort}'")
    out = Path(out) if out is not None else default_out(recipe)
    plan = expand(recipe, out, device=device)
    store = RunStore(out)
    report = SweepReport(out=store.root, plan=plan)

    all_runs = plan.hashes()
    for h in all_runs:  # damaged files of ended runs: repaired, or the run is finished again (check_done_run)
        record = store.result(h)
        if record is not None and check_done_run(store.run_dir(h), record) is not None:
            store.clear_result(h)
    todo = [h for h in all_runs if not store.is_done(h, retry_failed)]
    report.skipped_done = len(all_runs) - len(todo)
    if launcher == "local" and todo:
        from ..engine import resolve_device
        resolve_device(device)   # "--device cuda" without a GPU: one line now, not a failed run each
    preflight(recipe, plan, todo, data_root)
    store.root.mkdir(parents=True, exist_ok=True)
    store.write_recipe(recipe.text)
    store.write_plan(plan.to_dict())

    display = _Display(len(todo), progress, console)
    depends = plan.depends_on()
    stop: list[str] = []

    if launcher == "slurm":
        settings = SlurmSettings(**{**recipe.slurm.__dict__, **{k: v for k, v in (slurm or {}).items()
                                                               if v is not None}})
        runner: Any = SlurmLauncher(settings, store.root / "slurm", name=f"kdzoo-{recipe.name}",
                                    cluster=slurm_cluster, executor=executor, log=display.print)
    else:
        runner = LocalLauncher(workers, log=display.trainer_log)

    def run_phase(hashes: list[str], solo: bool, retry: bool) -> list[str]:
        """Run ``hashes``; return those another process holds."""
        hashes = [h for h in hashes if not store.is_done(h, retry)]
        if not hashes or stop:
            return []
        units = [[h] for h in hashes] if solo else make_units(plan.specs, hashes, cohort)
        payloads = [make_payload(store, plan.specs, u, plugins=recipe.plugins, data_root=data_root,
                                 retry_failed=retry) for u in units]
        locked: list[str] = []
        if isinstance(runner, LocalLauncher) and runner.workers == 1:
            runner.on_start = lambda i: display.start_unit(
                " + ".join(describe(plan, h) for h in units[i])[:90], plan.specs[units[i][0]].train.epochs)

        def on_done(i: int, statuses: dict[str, str]) -> None:
            for h, status in statuses.items():
                if status == LOCKED:
                    locked.append(h)
                    continue
                if status == SKIPPED:
                    continue
                report.statuses[h] = status
                if status in ENDED:
                    report.ran.append(h)
                record = store.result(h) or {}
                top1 = record.get("top1")
                detail = f" top1 {top1:.2f}" if isinstance(top1, (int, float)) and top1 == top1 else ""
                colour = {FINISHED: "green", DIVERGED: "yellow"}.get(status, "red")
                msg = f" ({record.get('message')})" if status != FINISHED and record.get("message") else ""
                display.print(f"[{colour}]{status}[/{colour}] {describe(plan, h)}{detail}{msg} [dim]({h})[/dim]")
                if status in (FAILED, DIVERGED) and fail_fast and not stop:
                    stop.append(f"{describe(plan, h)} {status}: {record.get('message', '')}")
            display.unit_done(sum(1 for s in statuses.values() if s != LOCKED))

        runner.run(payloads, on_done, should_stop=lambda: bool(stop))
        return locked

    def phase(hashes: list[str], solo: bool) -> None:
        locked = run_phase(hashes, solo, retry_failed)
        for _ in range(MAX_ROUNDS):
            if not locked or stop:
                return
            for h in locked:   # another process trains these: wait for it, then take over what it left
                if store.is_locked(h):
                    display.print(f"waiting for {describe(plan, h)} [dim]{h}[/dim], held by another process")
                store.wait_unlocked(h)
            locked = run_phase(locked, solo, False)

    try:
        with display:
            teachers = plan.hashes(TEACHER_ROLE)
            phase(teachers, solo=True)
            students = [h for h in plan.hashes(STUDENT_ROLE) if h not in teachers]
            phase([h for h in students if h not in depends or _teacher_ready(store, depends[h])], solo=False)
    finally:
        runner.close()
    for h in all_runs:
        report.statuses[h] = store.status(h)
    if stop:
        report.stopped = stop[0]
    report.outputs = leaderboard.build(store.root)
    return report


def _teacher_ready(store: RunStore, h: str) -> bool:
    record = store.result(h)
    return bool(record) and record.get("status") == FINISHED and store.has_model(h)


__all__ = ["SweepReport", "default_out", "describe", "preflight", "run_bench"]
