"""``kdzoo tune``: teachers, the search, the final runs, the tables.

1. Expand the recipe as ``kdzoo bench`` does (``OUT/plan.json`` is the defaults' plan, the same file) and
   train the teachers the sweep owns.
2. Search, in rounds: each round asks every unfinished study for its next trial and trains them side by
   side (``--workers`` processes, or Slurm jobs); a trial's outcome is told to its study as soon as its run
   ends. A study never has two trials at once, which keeps its trials deterministic (search.py).
3. Final runs: the recipe's own runs (the ``kdzoo bench`` runs, cohorts and all) and, per study, the chosen
   configuration with every recipe seed on the full student data, evaluated on the test split.
4. ``leaderboard.md`` etc. for the defaults, ``tuned_leaderboard.md`` and the tuning figures (report.py).

Every trial and final run is an ordinary run of the store: done runs are never trained again, interrupted
ones resume from their checkpoints, and Ctrl-C or ``kill -9`` loses at most the epochs since the last one.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from ...data import build_dataset
from ...engine import resolve_device, runlog
from ...engine.runfolder import COMPLETED, METRICS
from ...errors import ConfigError, KdzooError
from ...utils import atomic_write_json
from ..execution.launch import INCOMPLETE, LOCKED, SKIPPED, LocalLauncher, make_payload
from ..execution.slurm import SlurmLauncher
from ..execution.store import RunStore
from ..plan import STUDENT_ROLE, TEACHER_ROLE, Plan, estimate, expand
from ..recipe.parse import load_recipe
from ..recipe.types import Recipe, SlurmSettings
from ..report.leaderboard import build
from ..runner import SweepReport, _Display, _Phases, _local_gpus, _teacher_ready, check_done, default_out, preflight
from . import files
from .report import build_tuned
from .search import STATUS, ended, journal_path, next_trial, open_study, require_optuna, tell
from .studies import Study, final_entries, make_studies

STALLED_ROUNDS = 3   # rounds in a row in which no trial ended: give up (a worker keeps dying)


@dataclass
class TuneReport:
    out: Path
    trials: int = 0                                        # trials ended, all studies
    budget: int = 0                                        # trials planned, all studies
    trained: int = 0                                       # trial runs this call trained
    statuses: dict[str, str] = field(default_factory=dict) # final run hash -> status
    outputs: dict[str, Path] = field(default_factory=dict)
    search_only: bool = False

    @property
    def ok(self) -> bool:
        return all(s in COMPLETED for s in self.statuses.values())


class _TuneDisplay(_Display):
    """The search's bar counts trials (their length is not known before they end: pruning)."""

    def _title(self) -> str:
        return f"tune {self.runs_done}/{self.runs} trials"


def _exclusive(path: Path) -> int:
    """One ``kdzoo tune`` per output folder: two would ask the same studies for trials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"another kdzoo tune is running on {path.parent.parent} (it holds {path}); "
                          f"wait for it, or give this one another --out") from None
    return fd


def run_tune(recipe: Recipe | str | Path, out: str | Path | None = None, *, launcher: str = "local",
             workers: int = 1, data_root: str | None = None, device: str = "auto", search_only: bool = False,
             cohort: str = "auto", slurm: dict[str, Any] | None = None, slurm_cluster: str | None = None,
             executor: Any = None, progress: bool = True, console: Console | None = None,
             lines: bool | None = None) -> TuneReport:
    """Run a recipe's tuning (see the module docstring); ``progress``/``lines`` as in ``run_bench``."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if recipe.tune is None:
        raise ConfigError(f"{recipe.path} has no 'tune:' block (recipes/README.md says how to write one); "
                          f"'kdzoo bench' runs it with its defaults")
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"--launcher must be local or slurm, got '{launcher}'")
    require_optuna()
    out = Path(out) if out is not None else default_out(recipe)
    plan = expand(recipe, out, device=device)
    studies = make_studies(recipe, plan)
    store = RunStore(out)
    store.check_owner(recipe.name, recipe.text)   # another recipe's folder: one line, nothing written
    check_done(store, plan, plan.hashes())         # damaged files of ended runs: repaired, or trained again
    if launcher == "local":
        resolve_device(device)
    logs = ",".join(dict.fromkeys(b for h in plan.hashes() for b in runlog.parse(plan.specs[h].train.log)))
    runlog.check_installed(logs or runlog.OFF)
    preflight(recipe, plan, plan.hashes(), data_root)
    classes = build_dataset(recipe.dataset, data_root=data_root).num_classes
    where = files.folder(out)
    lock = _exclusive(where / files.LOCK)
    try:
        report = TuneReport(out=store.root, search_only=search_only)
        ctx = _Context(recipe, store, launcher, workers, device, data_root, cohort, slurm, slurm_cluster, executor,
                       progress, console, progress if lines is None else lines)
        search = _Search(ctx, plan, studies, 100.0 / classes, report)   # refuses changed studies first
        store.claim(recipe.name, recipe.text, plan.to_dict())
        runlog.prepare(logs or runlog.OFF, store.root, plan.recipe)
        files.write_studies(where, studies, recipe.tune.trials, classes)
        teachers = [h for h in plan.hashes(TEACHER_ROLE) if not store.is_done(h)]
        if teachers:
            ctx.phase(plan, teachers, solo=True)
        search.run()
        tuned = _choose(ctx, plan, studies)
        if not search_only:
            report.statuses = _finals(ctx, plan, tuned)
        report.outputs = {**build(store.root), **build_tuned(store.root)}
        return report
    finally:
        os.close(lock)


@dataclass
class _Context:
    """How and where runs execute, and how progress shows: what every phase shares."""
    recipe: Recipe
    store: RunStore
    launcher: str
    workers: int
    device: str
    data_root: str | None
    cohort: str
    slurm: dict[str, Any] | None
    slurm_cluster: str | None
    executor: Any
    progress: bool
    console: Console | None
    lines: bool

    def runner(self, display: _Display) -> Any:
        if self.launcher == "slurm":
            settings = SlurmSettings(**{**self.recipe.slurm.__dict__,
                                        **{k: v for k, v in (self.slurm or {}).items() if v is not None}})
            return SlurmLauncher(settings, self.store.root / "slurm", name=f"kdzoo-tune-{self.recipe.name}",
                                 cluster=self.slurm_cluster, executor=self.executor, log=display.print)
        return LocalLauncher(self.workers, log=display.trainer_log, gpus=_local_gpus(self.device, self.workers),
                             progress=display.progress)

    def phase(self, plan: Plan, hashes: list[str], solo: bool) -> None:
        """Train ``hashes`` of ``plan`` as ``kdzoo bench`` does (cohorts unless ``solo``), with its bars."""
        left = [h for h in hashes if not self.store.is_done(h)]
        display = _Display(len(left), sum(estimate(plan.specs[h])[0] or 0 for h in left), self.progress,
                           self.console, self.lines)
        runner = self.runner(display)
        try:
            with display:
                _Phases(plan, self.store, runner, display, SweepReport(self.store.root, plan),
                        plugins=self.recipe.plugins, data_root=self.data_root, cohort=self.cohort,
                        fail_fast=False, retry_failed=False).phase(left, solo)
        finally:
            runner.close()


class _Search:
    """The search: rounds of one trial per unfinished study, until every study has its trials."""

    def __init__(self, ctx: _Context, plan: Plan, studies: list[Study], chance: float, report: TuneReport) -> None:
        self.ctx, self.plan, self.studies, self.chance, self.report = ctx, plan, studies, chance, report
        self.store, self.tune = ctx.store, ctx.recipe.tune
        self.where = files.folder(self.store.root)
        self.handles = {s.name: open_study(self.where, s, self.tune) for s in studies}
        self.specs: dict[str, Any] = {}
        self.epoch_seconds: dict[str, float] = {}   # study -> seconds an epoch of its trials took

    def run(self) -> None:
        left = sum(max(self.tune.trials - ended(self.handles[s.name]), 0) for s in self.studies)
        display = _TuneDisplay(left, 0, self.ctx.progress, self.ctx.console, self.ctx.lines)
        runner = self.ctx.runner(display)
        stalled = 0
        try:
            with display:
                while True:
                    batch = self.ask(display)
                    self.write_trials()
                    if not batch:
                        break
                    stalled = 0 if self.train(runner, batch, display) else stalled + 1
                    if stalled >= STALLED_ROUNDS:
                        raise KdzooError(f"{STALLED_ROUNDS} rounds of trials ended without a result (a worker "
                                         f"keeps dying?); see the lines above, then run kdzoo tune again")
        finally:
            runner.close()
            self.write_trials()
        self.report.trials = sum(ended(h) for h in self.handles.values())
        self.report.budget = self.tune.trials * len(self.studies)

    def ask(self, display: _TuneDisplay) -> list[tuple[Study, int, str]]:
        """One (study, trial number, run hash) per unfinished study; trials whose run is done are told now."""
        batch = []
        for s in self.studies:
            teacher = s.template.teacher_run
            if teacher and not _teacher_ready(self.store, teacher):
                continue   # its teacher did not finish: nothing to search (the defaults table says why)
            while True:
                nxt = next_trial(self.handles[s.name], s, self.tune.trials)
                if nxt is None:
                    break
                number, params = nxt
                spec = s.trial_spec(params)
                h = spec.config_hash()
                self.specs[h] = spec
                if not self.store.is_done(h):
                    batch.append((s, number, h))
                    break
                self.tell(s, number, h)   # a configuration tried before: its run is reused, never retrained
                display.unit_done([h], 0)
        # the slowest methods first, so that a round does not end waiting for one long trial; the order
        # changes when a trial trains, never what it trains (each study has one trial per round)
        return sorted(batch, key=lambda item: -self.epoch_seconds.get(item[0].name, math.inf))

    def train(self, runner: Any, batch: list[tuple[Study, int, str]], display: _TuneDisplay) -> int:
        """Train one round's trials; returns how many ended."""
        pruner = asdict(self.tune.pruner) if self.tune.pruner else None
        payloads = []
        for s, number, h in batch:
            payload = make_payload(self.store, self.specs, [h], plugins=self.ctx.recipe.plugins,
                                   data_root=self.ctx.data_root)
            payload["label"] = f"{s.label} #{number} {s.rows[0][2]}"
            payload["titles"] = {h: f"{s.label} {s.rows[0][2]} trial {number}"}   # what its log lines say
            payload["trial"] = {"journal": str(journal_path(self.where, s)), "study": s.name, "number": number,
                                "pruner": pruner, "epochs": self.specs[h].train.epochs}
            payloads.append(payload)
        if isinstance(runner, LocalLauncher):
            runner.on_start = lambda i: display.start_unit(payloads[i]["label"], [batch[i][2]])
        ended = [0]

        def done(i: int, statuses: dict[str, str]) -> None:
            s, number, h = batch[i]
            status = statuses.get(h, INCOMPLETE)
            if status == LOCKED:      # a job of an earlier call still trains it: wait, then take it up
                why = self.store.wait_unlocked(h)
                if why:
                    display.print(f"[red]{s.name} #{number}: {why}[/red]")
            if not self.store.is_done(h):
                return                # interrupted: re-attached next round, resuming from its checkpoint
            self.tell(s, number, h)
            ended[0] += 1
            self.report.trained += status not in (SKIPPED, LOCKED)
            display.print(_line(s, number, self.store.result(h) or {}))
            display.unit_done([h], 0)

        runner.run(payloads, done)
        return ended[0]

    def tell(self, s: Study, number: int, h: str) -> None:
        record = self.store.result(h) or {}
        status = str(record.get("status", "failed"))
        seconds, epochs = record.get("train_seconds"), record.get("epochs")
        if isinstance(seconds, (int, float)) and isinstance(epochs, int) and epochs > 0:
            self.epoch_seconds[s.name] = max(self.epoch_seconds.get(s.name, 0.0), seconds / epochs)
        value = float(record.get("val_top1", float("nan"))) if status == "finished" else self.chance
        tell(self.handles[s.name], number, status, value, _val_curve(self.store.run_dir(h) / METRICS), h)

    def write_trials(self) -> None:
        files.write_trials(self.where, [r for s in self.studies for r in files.trial_rows(self.handles[s.name], s)])


def _val_curve(path: Path) -> list[tuple[int, float]]:
    """(epoch, validation top-1) from a run's metrics.jsonl."""
    out = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            r = json.loads(line)
            out.append((int(r["epoch"]), float(r["val_top1"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _line(s: Study, number: int, record: dict[str, Any]) -> str:
    """``pruned kd fmnist_cnn_tiny #7: val 71.25 (2 ep)``: one trial's outcome, within 80 columns."""
    status = str(record.get("status", "?"))
    v = record.get("val_top1")
    val = f": val {v:.2f} ({record.get('epochs')} ep)" if isinstance(v, (int, float)) and v == v else ""
    colour = {"finished": "green", "pruned": "dim", "diverged": "yellow"}.get(status, "red")
    teachers = len({r[0] for r in s.rows}) == 1 and s.template.teacher is not None
    who = f"{s.rows[0][0]}→{s.rows[0][2]}" if teachers and len(s.rows[0][0]) + len(s.rows[0][2]) < 34 else s.rows[0][2]
    return f"[{colour}]{status}[/{colour}] {s.label} {who} #{number}{val}"


def chosen(handle: Any) -> dict[str, Any] | None:
    """The study's best finished trial by validation top-1 (the earlier one on a tie); None when none finished."""
    done = [t for t in handle.study.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE" and t.user_attrs.get(STATUS) == "finished"]
    if not done:
        return None
    best = max(done, key=lambda t: (t.value, -t.number))
    return {"trial": best.number, "val_top1": best.value, "params": dict(best.params)}


def _choose(ctx: _Context, plan: Plan, studies: list[Study]) -> Plan:
    """Write each study's chosen configuration (chosen.json) and the plan of the tuned final runs."""
    where = files.folder(ctx.store.root)
    picks = {}
    for s in studies:
        pick = chosen(open_study(where, s, ctx.recipe.tune))
        if pick is not None:
            picks[s.name] = pick
    atomic_write_json(where / files.CHOSEN, picks)
    tuned = final_entries(plan, studies, {k: v["params"] for k, v in picks.items()})
    atomic_write_json(where / files.PLAN, tuned.to_dict())
    return tuned


def _finals(ctx: _Context, plan: Plan, tuned: Plan) -> dict[str, str]:
    """Train the final runs: the recipe's own (the kdzoo bench runs) and the chosen configurations'."""
    store = ctx.store
    both = Plan(recipe=plan.recipe, description=plan.description, dataset=plan.dataset, metric=plan.metric,
                entries=plan.entries + [replace(e, label=f"{e.label} tuned") for e in tuned.entries],
                specs={**plan.specs, **tuned.specs})
    depends = both.depends_on()
    todo = [h for h in both.hashes(STUDENT_ROLE) if h not in depends or _teacher_ready(store, depends[h])]
    ctx.phase(both, todo, solo=False)
    return {h: store.status(h) for h in both.hashes(STUDENT_ROLE)}


__all__ = ["TuneReport", "chosen", "run_tune"]
