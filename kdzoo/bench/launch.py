"""Launchers: where units of work (one run, or a cohort of runs) execute.

Every launcher calls ``execute_unit`` on a JSON-able payload, so a unit does
the same thing in this process, in a local worker process, or in a Slurm job:
import the recipe's plugins, take each run's lock (skipping runs that are done
or locked by another process), train, and write ``result.json`` (a failure
becomes a ``failed`` result with the error's first line; the traceback goes to
``error.log`` in the run folder). All launchers write the same run store, so a
sweep can move between them.

- ``LocalLauncher(workers=1)``: in this process, with progress callbacks.
- ``LocalLauncher(workers=N)``: a pool of N spawned processes, one unit each at a
  time, ``torch.set_num_threads(max(1, cores // N))`` in every worker (training
  itself runs with the run's ``cpu_threads``, so N never changes a result); with
  ``gpus=G`` each worker trains on its own GPU. ``kdzoo bench`` defaults to one
  worker per CPU core, or one per GPU (``default_workers``).
- ``SlurmLauncher``: one submitit job per unit, submitted as job arrays
  (partition, time, GPUs per job, array parallelism from the recipe's ``slurm``
  block or the command line). A job that hits its time limit is requeued and
  resumes from the run's checkpoint.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import torch

from ..engine.checkpoint import atomic_write_text
from ..engine.progress import Progress, QueueProgress
from ..engine.runfolder import RunFolderMismatch
from ..errors import ConfigError
from .plugins import import_plugins
from .recipe_types import SlurmSettings
from .run import RunSpec, environment, execute_cohort
from .store import RunStore

Payload = dict[str, Any]
OnDone = Callable[[int, dict[str, str]], None]     # (unit index, {hash: status}) after each unit
ShouldStop = Callable[[], bool]
LOCKED = "locked"          # status of a run another process is training
SKIPPED = "skipped"        # status of a run that was already done
INCOMPLETE = "incomplete"  # the unit ended without a result (killed job, lost worker)


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS)
        return os.cpu_count() or 1


def default_workers(device: str = "auto") -> int:
    """Local workers when --workers is not given: one per GPU when training on GPUs, else one per CPU core
    (each run keeps its own ``cpu_threads``, 1 by default, so the count never changes a result)."""
    if device != "cpu" and torch.cuda.is_available():
        return 1 if ":" in device else max(torch.cuda.device_count(), 1)
    return cpu_count()


def make_payload(store: RunStore, specs: dict[str, RunSpec], unit: list[str], *, plugins: list[str],
                 data_root: str | None, retry_failed: bool = False) -> Payload:
    return {"out": str(store.root), "runs": [[h, specs[h].to_dict()] for h in unit], "plugins": list(plugins),
            "data_root": data_root, "retry_failed": retry_failed}


def failed_record(spec: RunSpec, h: str, exc: BaseException) -> dict[str, Any]:
    first = (str(exc).strip().splitlines() or [""])[0]
    message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return {"status": "failed", "message": message, "config_hash": h, "epochs": 0, **environment()}


def execute_unit(payload: Payload, *, progress: Any = False, log: Callable[[str], None] | None = None,
                 threads: int | None = None) -> dict[str, str]:
    """Run one unit; returns {hash: status}: finished | diverged | failed for the runs it trained,
    ``skipped`` for runs already done, ``locked`` for runs another process is training."""
    threads = threads or payload.get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    import_plugins(payload.get("plugins") or [])
    store = RunStore(payload["out"])
    retry = bool(payload.get("retry_failed"))
    statuses: dict[str, str] = {}
    todo: list[tuple[str, RunSpec]] = []
    locks = []
    try:
        for h, spec_dict in payload["runs"]:
            if store.is_done(h, retry):
                statuses[h] = SKIPPED
                continue
            lock = store.lock(h)
            if lock is None:
                statuses[h] = LOCKED
                continue
            if store.is_done(h, retry):    # another process finished it between our two looks
                lock.release()
                statuses[h] = SKIPPED
                continue
            store.clear_result(h)           # only a failed result (retry) can be here
            locks.append(lock)
            todo.append((h, RunSpec.from_dict(spec_dict)))
        if todo:
            hook = None
            if payload.get("trial"):   # a tuning trial: its pruner sees every epoch (optuna, imported only here)
                from .tune.pruning import epoch_hook
                hook = epoch_hook(payload["trial"])
            statuses.update(_train(store, todo, payload.get("data_root"), progress, log, hook))
    finally:
        for lock in locks:
            lock.release()
    return statuses


def _train(store: RunStore, todo: list[tuple[str, RunSpec]], data_root: str | None, progress: Any,
           log: Callable[[str], None] | None, on_epoch: Any = None) -> dict[str, str]:
    specs = [s for _, s in todo]
    try:
        records = execute_cohort(specs, [store.run_dir(h) for h, _ in todo], data_root=data_root,
                                 cache_dir=store.root / "cache", progress=progress, log=log, on_epoch=on_epoch)
    except RunFolderMismatch:
        raise  # not a failed run: the sweep must not touch a folder holding another run
    except Exception as exc:  # one broken run must not end the sweep: record it and go on
        if len(todo) > 1:
            # one member may have taken the cohort down: train each alone (from its own checkpoint)
            if log:
                log(f"[yellow]cohort failed ({type(exc).__name__}: {str(exc).strip()[:120]}); "
                    f"training its runs one by one[/yellow]")
            out: dict[str, str] = {}
            for item in todo:
                out.update(_train(store, [item], data_root, progress, log, on_epoch))
            return out
        h, spec = todo[0]
        store.run_dir(h).mkdir(parents=True, exist_ok=True)
        atomic_write_text(store.run_dir(h) / "error.log", traceback.format_exc())
        store.write_result(h, failed_record(spec, h, exc))
        return {h: "failed"}
    return {h: str(record.get("status", "failed")) for (h, _), record in zip(todo, records)}


# ------------------------------------------------------------------- local
_EVENTS: Any = None   # in a worker: the queue its runs' progress goes to (None: the sweep shows no bars)


def _worker_init(threads: int, gpus: Any = None, events: Any = None) -> None:
    global _EVENTS
    torch.set_num_threads(threads)
    _EVENTS = events
    if gpus is not None:  # one GPU per worker: device "auto"/"cuda" then means this worker's own GPU
        torch.cuda.set_device(int(gpus.get()))


def _worker_run(payload: Payload, unit: int, lines: bool = False) -> dict[str, str]:
    # no bars in a worker: its run's bar is drawn by the sweep's process; log lines when the sweep prints them
    progress = (QueueProgress(_EVENTS, unit, payload.get("label", ""), lines=lines) if _EVENTS is not None
                else Progress(enabled=False, lines=lines))
    return execute_unit(payload, progress=progress)


class LocalLauncher:
    """Run units here (``workers=1``) or in a pool of ``workers`` processes (kept until ``close``)."""

    def __init__(self, workers: int = 1, *, log: Callable[[str], None] | None = None,
                 on_start: Callable[[int], None] | None = None, gpus: int = 0, progress: Any = False) -> None:
        if int(workers) < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers = int(workers)
        self.gpus = int(gpus)        # > 0: worker i trains on GPU i % gpus
        self.progress = progress     # in this process: the sweep's engine.progress.Progress (bars, lines)
        # workers print their epochs' lines only where the sweep shows no bars (a log, --no-progress)
        self._worker_lines = isinstance(progress, Progress) and progress.lines and not progress.live
        self.log = log
        self.on_start = on_start
        self._pool: ProcessPoolExecutor | None = None
        self._events: Any = None     # workers' progress messages, while the sweep shows bars

    def run(self, payloads: list[Payload], on_done: OnDone, should_stop: ShouldStop = lambda: False) -> None:
        if not payloads:
            return
        if self.workers == 1 or len(payloads) == 1:   # one unit gains nothing from a pool: train it here, with bars
            for i, payload in enumerate(payloads):
                if should_stop():
                    return
                if self.on_start:
                    self.on_start(i)
                on_done(i, execute_unit(payload, progress=self.progress, log=self.log))
            return
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            gpus = None
            if self.gpus:
                gpus = ctx.Queue()
                for i in range(self.workers):
                    gpus.put(i % self.gpus)
            live = isinstance(self.progress, Progress) and self.progress.live
            self._events = ctx.Queue() if live else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_worker_init,
                                             initargs=(max(1, cpu_count() // self.workers), gpus, self._events))
        futures = {}
        try:
            for i, payload in enumerate(payloads):
                futures[self._pool.submit(_worker_run, payload, i, self._worker_lines)] = i
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.25 if self._events is not None else None,
                                     return_when=FIRST_COMPLETED)
                self._relay()
                for fut in done:
                    i = futures[fut]
                    if fut.cancelled():
                        continue
                    try:
                        statuses = fut.result()
                    except RunFolderMismatch:
                        raise
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        if self.log:
                            self.log(f"[red]worker lost: {type(exc).__name__}: {exc}[/red]")
                        statuses = {h: INCOMPLETE for h, _ in payloads[i]["runs"]}
                    if self._events is not None:
                        self._relay()
                        self.progress.forget(i)
                    on_done(i, statuses)
                if should_stop():
                    for fut in pending:
                        fut.cancel()
                    pending = {f for f in pending if not f.cancelled()}
        except BaseException:
            self.close(abort=True)   # Ctrl-C: finished runs stay, started ones resume next time
            raise

    def _relay(self) -> None:
        """Show the progress messages the workers sent since the last look."""
        while self._events is not None:
            try:
                event = self._events.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            self.progress.relay(event)

    def close(self, abort: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if abort:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                proc.terminate()
        else:
            pool.shutdown(wait=True)


# ------------------------------------------------------------------- slurm
class UnitJob:
    """The callable each submitit job runs; requeued (and resumed from checkpoints) at its time limit."""

    def __call__(self, payload: Payload) -> dict[str, str]:
        return execute_unit(payload, progress=False)

    def checkpoint(self, payload: Payload) -> Any:
        from submitit.helpers import DelayedSubmission  # optional dependency (the 'slurm' extra)
        return DelayedSubmission(self, payload)


class SlurmLauncher:
    """Submit each unit as a submitit job (job arrays); ``cluster`` "local"/"debug" runs them on this machine."""

    def __init__(self, settings: SlurmSettings, folder: str | Path, *, name: str = "kdzoo",
                 cluster: str | None = None, executor: Any = None, log: Callable[[str], None] | None = None,
                 poll_seconds: float = 10.0) -> None:
        self.settings, self.folder, self.name = settings, Path(folder), name
        self.cluster, self.executor, self.log = cluster, executor, log
        self.poll_seconds = poll_seconds

    def make_executor(self) -> Any:
        try:
            import submitit  # optional dependency (the 'slurm' extra)
        except ImportError:
            raise ConfigError("--launcher slurm needs submitit: pip install submitit (or 'kdzoo[slurm]')") from None
        if self.cluster in (None, "slurm") and shutil.which("sbatch") is None:
            raise ConfigError("--launcher slurm: sbatch not found, so this machine cannot submit Slurm jobs; "
                              "use --launcher local (or --slurm-cluster local to try the Slurm path here)")
        s = self.settings
        ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster or "slurm")
        params: dict[str, Any] = {"timeout_min": int(s.time_min), "gpus_per_node": int(s.gpus_per_job),
                                  "cpus_per_task": int(s.cpus_per_task), "name": self.name,
                                  "slurm_array_parallelism": int(s.array_parallelism)}
        if s.mem_gb:
            params["mem_gb"] = s.mem_gb
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(s, key):
                params[f"slurm_{key}"] = getattr(s, key)
        if s.additional:
            params["slurm_additional_parameters"] = dict(s.additional)
        ex.update_parameters(**params)
        return ex

    def close(self, abort: bool = False) -> None:
        pass

    def run(self, payloads: list[Payload], on_done: OnDone, should_stop: ShouldStop = lambda: False) -> None:
        if not payloads:
            return
        ex = self.executor or self.make_executor()
        # torch would otherwise use every core of the node, not the job's share
        payloads = [{**p, "threads": int(self.settings.cpus_per_task)} for p in payloads]
        jobs = ex.map_array(UnitJob(), payloads)
        if self.log:
            ids = sorted({str(j.job_id).split("_")[0] for j in jobs})
            self.log(f"submitted {len(jobs)} job(s) ({', '.join(ids)}); logs in {self.folder}")
        pending = dict(enumerate(jobs))
        delay = 0.2
        while pending:
            progressed = False
            for i, job in list(pending.items()):
                if not _job_done(job):
                    continue
                progressed = True
                del pending[i]
                try:
                    statuses = job.result()
                except Exception as exc:  # killed, timed out without requeue, crashed before writing a result
                    if self.log:
                        first = (str(exc).strip().splitlines() or [""])[0]
                        self.log(f"[red]job {job.job_id} ended without a result: {type(exc).__name__}: "
                                 f"{first}[/red]")
                    statuses = {h: INCOMPLETE for h, _ in payloads[i]["runs"]}
                on_done(i, statuses)
                if should_stop():
                    for other in pending.values():
                        _cancel(other)
                    return
            if pending and not progressed:
                time.sleep(delay)
                delay = min(delay * 1.5, self.poll_seconds)


def _job_done(job: Any) -> bool:
    # DebugJob runs when its result is asked for: it is always "ready"
    if type(job).__name__ == "DebugJob":
        return True
    try:
        return bool(job.done())
    except Exception:
        return True


def _cancel(job: Any) -> None:
    try:
        job.cancel(check=False)
    except Exception:
        pass


__all__ = ["INCOMPLETE", "LOCKED", "SKIPPED", "LocalLauncher", "SlurmLauncher", "UnitJob", "cpu_count",
           "default_workers", "execute_unit", "make_payload"]
