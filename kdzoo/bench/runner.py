"""Run a sweep: plan -> preflight -> teachers -> students -> leaderboard.

``run_bench`` is the Python entry point behind ``kdzoo bench``:

1. expand the recipe (``plan.expand``), check that ``OUT`` holds no other recipe's sweep,
   and write ``OUT/recipe.yaml`` and ``OUT/plan.json``;
2. preflight (only when something is left to run): the dataset loads, teacher
   checkpoints exist and fit their models, every model fits the data;
3. train the teachers the sweep owns, then the students whose teacher is ready,
   through a launcher; runs that are done are skipped, runs locked by another
   process are left to it and waited for at the end (and taken over if that
   process died without finishing them; a holder that stays stopped, e.g. by
   Ctrl-Z, or whose lock outlives it is given up on after ``LOCK_PATIENCE``);
4. rebuild the leaderboard.

Ctrl-C stops the sweep; finished runs are kept and the next call resumes the
others from their last checkpoints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from .. import build_model
from ..data import build_dataset
from ..engine import resolve_device
from ..engine import runlog
from ..engine.progress import Progress
from ..engine.runfolder import COMPLETED, DIVERGED, ENDED, ERROR_LOG, FAILED, FINISHED, INTERRUPTED
from ..errors import CheckpointError, ConfigError
from .execution.eta import SweepClock, time_left
from .execution.launch import LOCKED, RERUN, SKIPPED, LocalLauncher, make_payload
from .execution.locks import LOCK_PATIENCE
from .execution.run import build_student, check_model_fits, dependencies, load_teacher_weights
from .execution.slurm import SlurmLauncher
from .execution.store import RunStore, check_done_run
from .plan import STUDENT_ROLE, TEACHER_ROLE, Plan, estimate, expand, make_units, unit_phases
from .recipe.parse import load_recipe
from .recipe.types import Recipe, SlurmSettings
from .report import leaderboard

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


def log_name(plan: Plan, h: str) -> str:
    """A run's name in TensorBoard and MLflow: ``teacher-student/label/seed0`` (``student/ce/seed0`` for the
    student alone, ``teachers/name/seed0`` for a teacher the sweep trains), one folder name per part."""
    e = next(e for e in plan.entries if e.hash == h)
    if e.role == TEACHER_ROLE:
        parts = ["teachers", e.teacher]
    else:
        # the access level is part of the name only where the recipe runs this label at several levels
        levels = {x.access for x in plan.entries if (x.teacher, x.student, x.label) == (e.teacher, e.student, e.label)}
        method = e.label if len(levels) < 2 else f"{e.label}-{e.access}"
        parts = [e.student if e.access == "none" else f"{e.teacher}-{e.student}", method]
    return "/".join(re.sub(r"[^A-Za-z0-9_.+=-]", "_", p) for p in (*parts, f"seed{e.seed}"))


def shown(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when it lies below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def default_out(recipe: Recipe) -> Path:
    """runs/<name>: a sweep never writes into results/, which holds the committed references."""
    return Path("runs") / recipe.name


def preflight(recipe: Recipe, plan: Plan, todo: list[str], data_root: str | None) -> None:
    """Fail early, with one line, when the data, a teacher checkpoint or a model cannot work."""
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
    """The sweep's bar (images left to train) above the current run's bar.

    In this process the trainer moves both every step (see engine/progress.py); units trained by
    worker processes send their steps, which move both too. The sweep's ETA is its ``clock``'s
    (eta.SweepClock: each phase's runs at their own models' speed, over the workers it keeps busy).
    Without a terminal, or with --no-progress, there are no bars and every epoch and run gets its log line.
    """

    def __init__(self, runs: int, images: int, enabled: bool, console: Console | None = None,
                 lines: bool = True, clock: SweepClock | None = None) -> None:
        self.progress = Progress(enabled=enabled, console=console, lines=lines)
        self.live = self.progress.live
        self.runs, self.images = runs, images
        self.runs_done, self.images_done = 0, 0
        self.sweep: Any = None
        self.clock = clock
        self.units: dict[int, tuple[str, ...]] = {}    # a launch's unit index -> its runs
        self.progress.watch = self._watch

    def __enter__(self) -> "_Display":
        self.progress.__enter__()
        # a dataset of unknown size: the sweep's bar counts runs instead of images
        eta = {"eta": self._eta} if self.clock is not None and self.images else {}
        self.sweep = self.progress.task(self._title(), total=self.images or self.runs, **eta)
        self.progress.sweep = self.sweep if self.images else None
        self.progress.advance(self.sweep, 0)   # the first speed sample: an ETA as soon as work is done
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def _title(self) -> str:
        return f"sweep {self.runs_done}/{self.runs} runs"

    def _eta(self) -> float | None:
        try:  # a display problem must never fail a run
            return self.clock.seconds() if self.clock is not None else None
        except Exception:
            return None

    def _watch(self, unit: Any, images: float) -> None:
        hashes = unit if isinstance(unit, tuple) else self.units.get(unit)
        if self.clock is not None and hashes:
            self.clock.advance(hashes, images)

    def print(self, message: str, problem: bool = False) -> None:
        """A line above the bars; a ``problem`` (a run that did not finish, a lock given up) stays one line in a
        log (engine/terminal.py)."""
        self.progress.print(message, problem=problem)

    def start_unit(self, description: str, hashes: list[str] | None = None) -> None:
        self.progress.label = description
        self.progress.unit = tuple(hashes or ())

    def trainer_log(self, message: str, problem: bool = False) -> None:
        try:  # a display problem must never fail a run
            self.progress.log(message, problem=problem)   # on a terminal the bars show epochs; others are printed
        except Exception:
            pass

    def unit_done(self, hashes: list[str], images: int) -> None:
        """A unit ended: the sweep's bar moves to the work done so far (the unit's estimate counted once)."""
        self.runs_done += len(hashes)
        self.images_done += images
        if self.clock is not None:
            self.clock.finish(hashes)
        self.progress.update(self.sweep, completed=self.images_done if self.images else self.runs_done,
                             description=self._title())


class _Phases:
    """Runs a list of hashes through the launcher, records each outcome in the report, and waits for and
    takes over runs another process holds; ``stop`` is set by --fail-fast."""

    def __init__(self, plan: Plan, store: RunStore, runner: Any, display: "_Display", report: SweepReport, *,
                 plugins: list[str], data_root: str | None, cohort: str, fail_fast: bool,
                 retry_failed: bool, lock_patience: float = LOCK_PATIENCE) -> None:
        self.plan, self.store, self.runner, self.display, self.report = plan, store, runner, display, report
        self.plugins, self.data_root, self.cohort = plugins, data_root, cohort
        self.fail_fast, self.retry_failed, self.lock_patience = fail_fast, retry_failed, lock_patience
        self.stop: list[str] = []

    def phase(self, hashes: list[str], solo: bool) -> None:
        locked = self.run(hashes, solo, self.retry_failed)
        for _ in range(MAX_ROUNDS):
            if not locked or self.stop:
                return
            # another process trains these: wait for it, then take over what it left (not what it holds stopped)
            locked = self.run([h for h in locked if self._wait(h)], solo, False)

    def _wait(self, h: str) -> bool:
        """Wait until no other process holds run ``h``; False (and why, printed) when its holder was given up on."""
        what = f"{describe(self.plan, h)} [dim]({h})[/dim]"
        why = self.store.wait_unlocked(h, patience=self.lock_patience,
                                       report=lambda message: self.display.print(f"waiting for {what}: {message}"))
        if why:
            self.display.print(f"[red]{what}: {why}[/red]", problem=True)
        return why is None

    def run(self, hashes: list[str], solo: bool, retry: bool) -> list[str]:
        """Run ``hashes``; return those another process holds."""
        plan, store = self.plan, self.store
        hashes = [h for h in hashes if not store.is_done(h, retry)]
        if not hashes or self.stop:
            return []
        units = [[h] for h in hashes] if solo else make_units(plan.specs, hashes, self.cohort)
        payloads = [{**make_payload(store, plan.specs, u, plugins=self.plugins, data_root=self.data_root,
                                    retry_failed=retry), "label": _short_label(plan, u),
                     "experiment": plan.recipe, "log_names": {h: log_name(plan, h) for h in u},
                     "titles": {h: describe(plan, h) for h in u}} for u in units]
        locked: list[str] = []
        self.display.units = {i: tuple(u) for i, u in enumerate(units)}
        if isinstance(self.runner, LocalLauncher):
            self.runner.on_start = lambda i: self.display.start_unit(_short_label(plan, units[i]), units[i])
        self.runner.run(payloads, lambda i, statuses: self._done(statuses, locked),
                        should_stop=lambda: bool(self.stop))
        return locked

    def _done(self, statuses: dict[str, str], locked: list[str]) -> None:
        notes = getattr(statuses, "notes", {})
        for h, status in statuses.items():
            if status == LOCKED:
                locked.append(h)
                continue
            if status == SKIPPED:
                continue
            self.report.statuses[h] = status
            if status in ENDED:
                self.report.ran.append(h)
            if status not in ENDED:   # a transient failure or a lost worker: nothing is recorded, a rerun resumes
                why = notes.get(h, "its process ended before it did")
                self.display.print(f"[yellow]{INTERRUPTED}[/yellow] {describe(self.plan, h)} ({why}) "
                                   f"[dim]({h})[/dim]; {RERUN}", problem=True)
                continue
            record = self.store.result(h) or {}
            top1 = record.get("top1")
            detail = f" top1 {top1:.2f}" if isinstance(top1, (int, float)) and top1 == top1 else ""
            colour = {FINISHED: "green", DIVERGED: "yellow"}.get(status, "red")
            msg = f" ({record.get('message')})" if status != FINISHED and record.get("message") else ""
            if status == FAILED:
                msg += f"; traceback in {shown(self.store.run_dir(h) / ERROR_LOG)}; --retry-failed trains it again"
            self.display.print(f"[{colour}]{status}[/{colour}] {describe(self.plan, h)}{detail}{msg} "
                               f"[dim]({h})[/dim]", problem=status != FINISHED)
            if status in (FAILED, DIVERGED) and self.fail_fast and not self.stop:
                self.stop.append(f"{describe(self.plan, h)} {status}: {record.get('message', '')}")
        ended = [h for h, s in statuses.items() if s != LOCKED]
        self.display.unit_done(ended, _images(self.plan, ended))


def _images(plan: Plan, hashes: list[str]) -> int:
    """The images ``hashes`` train on (their estimate): what the sweep's bar counts."""
    return sum(estimate(plan.specs[h])[0] or 0 for h in hashes)


def run_bench(recipe: Recipe | str | Path, out: str | Path | None = None, *, launcher: str = "local",
              workers: int = 1, cohort: str = "auto", fail_fast: bool = False, data_root: str | None = None,
              device: str = "auto", retry_failed: bool = False, slurm: dict[str, Any] | None = None,
              slurm_cluster: str | None = None, executor: Any = None, progress: bool = True,
              console: Console | None = None, lines: bool | None = None, log: str | None = None,
              lock_patience: float = LOCK_PATIENCE, add_to_out: bool = False) -> SweepReport:
    """Run a sweep (see the module docstring). ``progress``: bars on a terminal; ``lines``: a log line per
    finished epoch and run (default: as ``progress``; ``kdzoo bench --no-progress`` keeps them); ``log``:
    TensorBoard/MLflow logging of every run (engine/runlog.py), replacing the recipe's ``train.log``;
    ``lock_patience``: seconds a run's lock held by a stopped or vanished process is waited for;
    ``add_to_out``: run in a folder that holds another recipe's sweep (see ``RunStore.check_owner``)."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"--launcher must be local or slurm, got '{launcher}'")
    if cohort not in ("auto", "off"):
        raise ConfigError(f"--cohort must be auto or off, got '{cohort}'")
    out = Path(out) if out is not None else default_out(recipe)
    plan = expand(recipe, out, device=device, log=log)
    store = RunStore(out)
    edited = store.check_owner(recipe.name, recipe.text, add=add_to_out)   # another recipe's folder: one line now
    report = SweepReport(out=store.root, plan=plan)

    all_runs = plan.hashes()
    check_done(store, plan, all_runs)
    todo = [h for h in all_runs if not store.is_done(h, retry_failed)]
    report.skipped_done = len(all_runs) - len(todo)
    if launcher == "local" and todo:
        resolve_device(device)   # "--device cuda" without a GPU: one line now, not a failed run each
    logs = ",".join(dict.fromkeys(b for h in todo for b in runlog.parse(plan.specs[h].train.log))) or runlog.OFF
    runlog.check_installed(logs)
    preflight(recipe, plan, todo, data_root)
    store.claim(recipe.name, recipe.text, plan.to_dict(), add=add_to_out)
    runlog.prepare(logs, store.root, plan.recipe)

    clock = SweepClock(store, plan.specs, unit_phases(plan, todo, cohort), workers if launcher == "local" else 1)
    display = _Display(len(todo), _images(plan, todo), progress, console, progress if lines is None else lines,
                       clock)
    if edited:
        display.print(edited)
    eta = time_left(store, [plan.specs[h] for h in todo]).describe(workers if launcher == "local" else 1)
    if eta:
        display.print(eta)
    depends = plan.depends_on()

    if launcher == "slurm":
        settings = SlurmSettings(**{**recipe.slurm.__dict__, **{k: v for k, v in (slurm or {}).items()
                                                               if v is not None}})
        runner: Any = SlurmLauncher(settings, store.root / "slurm", name=f"kdzoo-{recipe.name}",
                                    cluster=slurm_cluster, executor=executor, log=display.print)
    else:
        runner = LocalLauncher(workers, log=display.trainer_log, gpus=_local_gpus(device, workers),
                               progress=display.progress)

    sweep = _Phases(plan, store, runner, display, report, plugins=recipe.plugins, data_root=data_root,
                    cohort=cohort, fail_fast=fail_fast, retry_failed=retry_failed, lock_patience=lock_patience)

    try:
        with display:
            teachers = plan.hashes(TEACHER_ROLE)
            sweep.phase(teachers, solo=True)
            students = [h for h in plan.hashes(STUDENT_ROLE) if h not in teachers]
            check_done(store, plan, students)   # a teacher finished again now: do its students still match it?
            sweep.phase([h for h in students if h not in depends or _teacher_ready(store, depends[h])], solo=False)
    finally:
        runner.close()
    for h in all_runs:
        report.statuses[h] = store.status(h)
    if sweep.stop:
        report.stopped = sweep.stop[0]
    report.outputs = leaderboard.build(store.root)
    return report


def check_done(store: RunStore, plan: Plan, hashes: list[str]) -> None:
    """Damaged or foreign files of ended runs: repaired, or the run is finished (or trained) again."""
    for h in hashes:
        record = store.result(h)
        if record is not None and check_done_run(store.run_dir(h), record,
                                                 depends=_teacher_as_recorded(store, plan.specs[h])) is not None:
            store.clear_result(h)


def _teacher_as_recorded(store: RunStore, spec: Any) -> dict[str, str]:
    """The run's dependencies now, when they can be trusted: a teacher the sweep trained counts only while its
    model.pt is the one its own result records (a damaged one is finished again first, then compared)."""
    depends = dependencies(spec, store.root)
    if spec.teacher_run and depends:
        teacher = store.result(spec.teacher_run)
        if teacher is None or teacher.get("model_sha256") != depends.get("teacher"):
            return {}
    return depends


def _short_label(plan: Plan, unit: list[str]) -> str:
    """What a unit's bar is called: "teacher fmnist_teacher", or "s0 fmnist_teacher→fmnist_cnn_tiny kd,dkd"
    (the pair before the methods, which a narrow terminal cuts first)."""
    if len(unit) == 1:
        return describe(plan, unit[0])
    entries = [next(e for e in plan.entries if e.hash == h) for h in unit]
    head = next((e for e in entries if e.access != "none"), entries[0])
    pair = f"{head.teacher_model}→{head.student}" if head.access != "none" else head.student
    return f"s{head.seed} {pair} {','.join(e.label for e in entries)}"


def _local_gpus(device: str, workers: int) -> int:
    """GPUs to spread local workers over: all of them for device auto/cuda, none for cpu or a named GPU."""
    if workers < 2 or device == "cpu" or ":" in device:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _teacher_ready(store: RunStore, h: str) -> bool:
    record = store.result(h)
    return bool(record) and record.get("status") == FINISHED and store.has_model(h)


__all__ = ["SweepReport", "default_out", "describe", "preflight", "run_bench"]
