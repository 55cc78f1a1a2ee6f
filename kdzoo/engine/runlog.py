"""Run logging to the ecosystem's tools: TensorBoard event files and an MLflow tracking store.

Off by default (``TrainConfig.log = "off"``); ``log: tensorboard``, ``log: mlflow`` or
``log: tensorboard,mlflow`` in a recipe's ``train`` block, or ``--log`` on ``kdzoo train`` and
``kdzoo bench``, turn it on. What a run logs is what its ``metrics.jsonl`` holds, one step per
epoch: every weighted loss term (``loss/<term>``, ``loss/total``), the learning rate
(``train/lr``), test and validation accuracy (``test/top1``, ``val/top1``, ...), the teacher
queries so far (``teacher/queries``), and, for epochs trained in this process,
``speed/images_per_second`` and ``speed/epoch_seconds``.

Where it goes, under ``root`` (a ``kdzoo bench`` output folder, or ``kdzoo train``'s run folder):

    root/tensorboard/<name>/   event files of the run called <name> (pair/method/seed in a sweep),
                               so ``tensorboard --logdir root`` shows every run of a sweep
    root/mlflow.db             MLflow's SQLite store: one experiment per recipe, one MLflow run
                               per kdzoo run, its parameters the settings the run's hash covers
    root/mlartifacts/          MLflow's artifact folder (kdzoo logs no artifacts)

Logging is an observer: it never changes a run's hash (``RunSpec.identity`` leaves the setting
out) nor its numbers, and an error inside a logger prints one warning and turns that logger off
for the run instead of failing it. When a run resumes, its log is rewritten from the run's own
history (the checkpoint's epochs), so the log never holds the epochs of an attempt that was cut
short. Nothing here opens a network connection: MLflow gets a local SQLite URI and its telemetry
is switched off before it is imported.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError, KdzooError, did_you_mean, flatten

OFF = "off"
BACKENDS = ("tensorboard", "mlflow")
INSTALL = "pip install 'kdzoo[logging]'"
TENSORBOARD_DIR, MLFLOW_DB, MLFLOW_ARTIFACTS = "tensorboard", "mlflow.db", "mlartifacts"
HASH_TAG = "kdzoo.hash"
PARAM_CHARS, PARAMS_PER_CALL = 6000, 100   # MLflow's limits: characters of a parameter value, parameters per call
# metrics.jsonl keys with their own names; a loss's terms go to loss/<term>, "<split>_<metric>" to <split>/<metric>
RENAMED = {"lr": "train/lr", "train_loss": "loss/total", "teacher_queries": "teacher/queries",
           "seconds": "speed/epoch_seconds"}
SPLITS = ("test", "val")


def parse(value: str) -> tuple[str, ...]:
    """``"tensorboard,mlflow"`` -> ("tensorboard", "mlflow"); ``"off"`` -> (); unknown names are a ConfigError."""
    names = [v.strip().lower() for v in str(value).split(",") if v.strip()]
    if names in ([], [OFF]):
        return ()
    for name in names:
        if name not in BACKENDS:
            raise ConfigError(f"log '{name}' is not one of {OFF}, {', '.join(BACKENDS)}"
                              f"{did_you_mean(name, (OFF, *BACKENDS))} (several: tensorboard,mlflow)")
    return tuple(dict.fromkeys(names))


def check_installed(value: str) -> None:
    """One line with the install command when a backend's package is missing (before anything runs)."""
    for name in parse(value):
        if importlib.util.find_spec(name) is None:
            raise ConfigError(f"--log {name} needs {name}: {INSTALL}")


def tracking_uri(root: str | os.PathLike) -> str:
    """The MLflow store of ``root``: a local SQLite file, so MLflow never looks for a server."""
    return "sqlite:///" + (Path(root).resolve() / MLFLOW_DB).as_posix()


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """One metrics.jsonl record as TensorBoard/MLflow scalars (finite numbers only)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "train" and isinstance(value, dict):
            out.update({f"loss/{k}": v for k, v in value.items()})
        elif key in RENAMED:
            out[RENAMED[key]] = value
        elif key != "epoch":
            split, _, metric = key.partition("_")
            out[f"{split}/{metric}" if split in SPLITS and metric else key] = value
    return {k: float(v) for k, v in out.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def flat_params(settings: dict[str, Any]) -> dict[str, str]:
    """Nested settings as MLflow parameters: {"train": {"lr": 0.1}} -> {"train.lr": "0.1"}."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
            for k, v in flatten(settings).items()}


def _quiet_mlflow() -> Any:
    """Import MLflow with its telemetry off and its start-up chatter (INFO lines, SQLAlchemy warnings) muted."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"   # no usage report to the network, whatever the user's setting
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.tracking import MlflowClient  # optional dependency (the 'logging' extra)
    return MlflowClient


def mlflow_client(root: str | os.PathLike) -> Any:
    MlflowClient = _quiet_mlflow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MlflowClient(tracking_uri=tracking_uri(root))


def mlflow_experiment(client: Any, root: str | os.PathLike, name: str) -> str:
    """The id of experiment ``name`` in ``root``'s store, created (with its artifacts under root) if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (Path(root).resolve() / MLFLOW_ARTIFACTS).as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:   # another process created it between the two calls
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def prepare(value: str, root: str | os.PathLike, experiment: str) -> None:
    """Create the MLflow store and experiment once, before parallel workers log into it (creating the
    SQLite tables is not safe to race); nothing for TensorBoard."""
    if "mlflow" in parse(value):
        Path(root).mkdir(parents=True, exist_ok=True)
        try:
            mlflow_experiment(mlflow_client(root), root, experiment)
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy, MLflow and OS errors alike: one line
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            raise KdzooError(f"cannot open the MLflow store {tracking_uri(root)} ({type(exc).__name__}: "
                             f"{first})") from exc


class _TensorBoard:
    def __init__(self, folder: Path, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency (the 'logging' extra)

        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("events.out.tfevents.*"):   # the log is rewritten from the run's history
            old.unlink()
        self.writer = SummaryWriter(log_dir=str(folder))
        self.writer.add_text("settings", "```\n" + json.dumps(params, indent=2, sort_keys=True, default=str)
                             + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()   # visible in a running TensorBoard after every epoch

    def close(self, status: str) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, root: Path, experiment: str, name: str, params: dict[str, Any],
                 tags: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        self.client = mlflow_client(root)
        exp = mlflow_experiment(self.client, root, experiment)
        digest = tags.get(HASH_TAG, "")
        if digest:   # an earlier attempt of this run: replaced by one rewritten from the run's history
            for old in self.client.search_runs([exp], filter_string=f"tags.`{HASH_TAG}` = '{digest}'"):
                self.client.delete_run(old.info.run_id)
        self.run_id = self.client.create_run(exp, run_name=name).info.run_id
        values = [Param(k, v[:PARAM_CHARS]) for k, v in flat_params(params).items()]
        for i in range(0, len(values), PARAMS_PER_CALL):   # MLflow takes at most 100 per call
            self.client.log_batch(self.run_id, params=values[i:i + PARAMS_PER_CALL])
        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def close(self, status: str) -> None:
        self.client.set_tag(self.run_id, "kdzoo.status", status)
        state = {"finished": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, state)


class RunLog:
    """One run's logging to the backends ``value`` names. ``epoch`` is the trainer's epoch callback.

    ``root``: the folder holding ``tensorboard/`` and ``mlflow.db``; ``name``: the run's name there
    (also its TensorBoard folder); ``params``: the settings the run's hash covers; ``tags``: strings
    that find it again (``kdzoo.hash``, method, pair, seed)."""

    def __init__(self, value: str, root: str | os.PathLike, name: str, *, experiment: str,
                 params: dict[str, Any], tags: dict[str, str], warn: Any = None) -> None:
        self.backends = parse(value)
        self.root, self.name, self.experiment = Path(root), name, experiment
        self.params, self.tags = params, tags
        self.warn = warn or (lambda message: warnings.warn(message, stacklevel=2))
        self.loggers: dict[str, Any] | None = None   # opened at the first epoch, when the history is known

    def _open(self) -> None:
        self.loggers = {}
        for backend in self.backends:
            self._guard(backend, lambda: self.loggers.__setitem__(backend, self._make(backend)))

    def _make(self, backend: str) -> Any:
        if backend == "tensorboard":
            return _TensorBoard(self.root / TENSORBOARD_DIR / self.name, self.params)
        return _MLflow(self.root, self.experiment, self.name, self.params, self.tags)

    def _guard(self, backend: str, action: Any) -> None:
        """Run ``action``; a logger's error is one warning and that logger stops, the run goes on."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - a log must never fail the run it observes
            if self.loggers is not None:
                self.loggers.pop(backend, None)
            first = (str(exc).strip().splitlines() or [""])[0][:60]
            self.warn(f"{self.name}: {backend} logging stopped, the run goes on ({type(exc).__name__}: {first})")

    def epoch(self, history: list[dict[str, Any]], images_per_second: float | None = None) -> None:
        """Log the last record of ``history``; the first call also writes the earlier ones (a resumed run)."""
        if not self.backends or not history:
            return
        replay = history[:-1] if self.loggers is None else []
        if self.loggers is None:
            self._open()
        latest = scalars(history[-1])
        if images_per_second is not None and math.isfinite(images_per_second):
            latest["speed/images_per_second"] = float(images_per_second)
        for backend, logger in list(self.loggers.items()):
            def write(logger: Any = logger) -> None:
                for record in replay:
                    logger.log(scalars(record), int(record.get("epoch", 0)))
                logger.log(latest, int(history[-1].get("epoch", 0)))
            self._guard(backend, write)

    def close(self, status: str) -> None:
        for backend, logger in list((self.loggers or {}).items()):
            self._guard(backend, lambda logger=logger: logger.close(status))
        self.loggers = {}


__all__ = ["BACKENDS", "HASH_TAG", "INSTALL", "MLFLOW_ARTIFACTS", "MLFLOW_DB", "OFF", "RunLog", "TENSORBOARD_DIR",
           "check_installed", "flat_params", "parse", "prepare", "scalars", "tracking_uri"]
