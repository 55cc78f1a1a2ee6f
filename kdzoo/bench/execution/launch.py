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
  worker per CPU core, or one per GPU (``default_workers``). Workers end with the
  sweep's process however it ends (``kill -9`` included): no orphan keeps training.
- ``SlurmLauncher`` (``execution/slurm.py``): one submitit job per unit.
"""
from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable

import torch

from ...engine.progress import Progress, QueueProgress
from ...engine.runfolder import ERROR_LOG, INTERRUPTED, RunFolderMismatch
from ...engine.terminal import problem_text
from ...errors import ConfigError, KdzooError, StorageError, one_line_warnings
from ...utils import atomic_write_text
from ..recipe.plugins import import_plugins
from ..spec import RunSpec
from .run import LogPlace, environment, execute_cohort
from .store import RunStore

Payload = dict[str, Any]
OnDone = Callable[[int, dict[str, str]], None]     # (unit index, {hash: status}) after each unit
ShouldStop = Callable[[], bool]
LOCKED = "locked"          # status of a run another process is training
SKIPPED = "skipped"        # status of a run that was already done
INCOMPLETE = "incomplete"  # the unit ended without a result (killed job, lost worker)
# errors of the machine, not of the run: the run is left unfinished (its checkpoint kept) and the next call retries it
TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ESTALE, errno.ETIMEDOUT, errno.ENOMEM,
                    errno.EACCES, errno.EPERM}
RERUN = "run the same command again to resume it"
PR_SET_PDEATHSIG = 1        # prctl option (linux/prctl.h): a signal the kernel sends when the parent ends
PARENT_POLL_SECONDS = 1.0
JOIN_SECONDS = 30.0         # a terminated worker's exit, waited for before its runs' statuses are read


class Statuses(dict):
    """A unit's {run hash: status}, with ``notes``: {run hash: why it was left unfinished}."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.notes: dict[str, str] = {}

    def merge(self, other: "dict[str, str]") -> None:
        self.update(other)
        self.notes.update(getattr(other, "notes", {}))


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a failure of the machine rather than of the run:
    a full disk or quota, an I/O error, a read-only or vanished mount, no memory."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (StorageError, MemoryError)) or (isinstance(exc, OSError)
                                                             and exc.errno in TRANSIENT_ERRNOS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def first_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, KdzooError):
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


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


def _interrupted(todo: list[tuple[str, RunSpec]], exc: BaseException) -> Statuses:
    """The runs of a unit a transient error stopped: no result is written, so the next call retries them
    (the sweep prints each with ``notes``, the error's first line, which names the file)."""
    out = Statuses({h: INTERRUPTED for h, _ in todo})
    out.notes = {h: first_line(exc) for h, _ in todo}
    return out


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
    statuses = Statuses()
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
            places = _log_places(store, payload)
            titles = payload.get("titles") or {}   # what log lines call each run ("teacher fmnist_teacher")
            hook = None
            if payload.get("trial"):   # a tuning trial: its pruner sees every epoch (optuna, imported only here)
                from ..tune.pruning import epoch_hook
                hook = epoch_hook(payload["trial"])
            statuses.merge(_train(store, todo, payload.get("data_root"), progress, log, places, titles, hook))
    finally:
        for lock in locks:
            lock.release()
    return statuses


def _log_places(store: RunStore, payload: Payload) -> dict[str, LogPlace]:
    """Where each run of the unit is logged: the sweep's output folder, under the name the sweep gave it."""
    return {h: LogPlace(store.root, str(payload.get("experiment") or store.root.name), name)
            for h, name in (payload.get("log_names") or {}).items()}


def _train(store: RunStore, todo: list[tuple[str, RunSpec]], data_root: str | None, progress: Any,
           log: Callable[[str], None] | None, places: dict[str, LogPlace] | None = None,
           titles: dict[str, str] | None = None, on_epoch: Any = None) -> "Statuses":
    specs = [s for _, s in todo]
    try:
        records = execute_cohort(specs, [store.run_dir(h) for h, _ in todo], data_root=data_root,
                                 cache_dir=store.root / "cache", progress=progress, log=log,
                                 log_places=[(places or {}).get(h) for h, _ in todo],
                                 titles=[(titles or {}).get(h, "") for h, _ in todo], on_epoch=on_epoch)
    except RunFolderMismatch:
        raise  # not a failed run: the sweep must not touch a folder holding another run
    except Exception as exc:  # one broken run must not end the sweep: record it and go on
        if transient(exc):    # the disk or the machine failed, not the run: leave it unfinished
            return _interrupted(todo, exc)
        if len(todo) > 1:
            # one member may have taken the cohort down: train each alone (from its own checkpoint)
            if log:
                log(f"[yellow]cohort failed ({type(exc).__name__}: {str(exc).strip()[:120]}); "
                    f"training its runs one by one[/yellow]")
            out = Statuses()
            for item in todo:
                out.merge(_train(store, [item], data_root, progress, log, places, titles, on_epoch))
            return out
        h, spec = todo[0]
        try:
            store.run_dir(h).mkdir(parents=True, exist_ok=True)
            atomic_write_text(store.run_dir(h) / ERROR_LOG, traceback.format_exc())
            store.write_result(h, failed_record(spec, h, exc))
        except OSError as write_exc:  # no room even for the small failure record: leave the run unfinished
            return _interrupted(todo, write_exc)
        return Statuses({h: "failed"})
    return Statuses({h: str(record.get("status", "failed")) for (h, _), record in zip(todo, records)})


# ------------------------------------------------------------------- local
_EVENTS: Any = None   # in a worker: the queue its runs' progress goes to (None: the sweep shows no bars)


def _die_with(parent: int) -> None:
    """End this worker when the sweep's process ``parent`` ends, however it ends (``kill -9`` included):
    the kernel's parent-death signal where Linux offers it, and a thread that watches for the worker
    being handed to another parent everywhere. Its run keeps its last checkpoint; the next call resumes it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):   # not Linux: the watching thread alone
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)   # no clean-up to wait for: every file is written atomically

    if os.getppid() != parent:   # the sweep ended before this worker started
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="kdzoo-parent-watch", daemon=True).start()


def _worker_init(threads: int, gpus: Any = None, events: Any = None, parent: int | None = None) -> None:
    global _EVENTS
    if parent is not None:
        _die_with(parent)
    one_line_warnings(problem_text)
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
    """Run units here (``workers=1``) or in a pool of ``workers`` processes (kept until ``close``); ``log(message,
    problem=False)`` prints a line (``problem``: one that says what did not finish, engine/terminal.py)."""

    def __init__(self, workers: int = 1, *, log: Callable[..., None] | None = None,
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
                                             initargs=(max(1, cpu_count() // self.workers), gpus, self._events,
                                                       os.getpid()))
        futures = {}
        lost = False
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
                        if self.log and not lost:   # the pool is broken now: every unit still in it says so
                            self.log(f"[red]a worker process was lost ({type(exc).__name__}: {exc}); its runs "
                                     f"and those still queued are left unfinished: {RERUN.replace(' it', ' them')}"
                                     f"[/red]", problem=True)
                        lost = True
                        statuses = Statuses({h: INCOMPLETE for h, _ in payloads[i]["runs"]})
                        statuses.notes = {h: "its worker process was lost" for h in statuses}
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
        if lost:   # a broken pool takes no more work: the next phase starts a fresh one
            self.close(abort=True)

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
            for proc in procs:   # gone before the sweep reads its runs' locks and statuses
                proc.join(timeout=JOIN_SECONDS)
        else:
            pool.shutdown(wait=True)


__all__ = ["INCOMPLETE", "LOCKED", "RERUN", "SKIPPED", "LocalLauncher", "Statuses", "cpu_count", "default_workers",
           "execute_unit", "make_payload", "transient"]
