"""``SlurmLauncher``: each unit of a sweep as a submitit job, submitted as job arrays.

Partition, time, GPUs per job and array parallelism come from the recipe's ``slurm``
block or the command line. A job runs ``execute_unit`` (execute/launch.py) like a local
worker, so a sweep can move between launchers. A job that hits its time limit is
requeued and resumes from the run's checkpoint; one that ends without a result leaves
its runs unfinished, for the next call to resume.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ...engine.terminal import problem_text
from ...errors import ConfigError, one_line_warnings
from ..recipe.types import SlurmSettings
from .launch import INCOMPLETE, OnDone, Payload, ShouldStop, execute_unit


class UnitJob:
    """The callable each submitit job runs; requeued (and resumed from checkpoints) at its time limit."""

    def __call__(self, payload: Payload) -> dict[str, str]:
        one_line_warnings(problem_text)   # as in the sweep's own process and its local workers
        return execute_unit(payload, progress=False)

    def checkpoint(self, payload: Payload) -> Any:
        from submitit.helpers import DelayedSubmission  # optional dependency (the 'slurm' extra)
        return DelayedSubmission(self, payload)


class SlurmLauncher:
    """Submit each unit as a submitit job (job arrays); ``cluster`` "local"/"debug" runs them on this machine;
    ``log`` as LocalLauncher's."""

    def __init__(self, settings: SlurmSettings, folder: str | Path, *, name: str = "kdzoo",
                 cluster: str | None = None, executor: Any = None, log: Callable[..., None] | None = None,
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
                                 f"{first}[/red]", problem=True)
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


__all__ = ["SlurmLauncher", "UnitJob"]
