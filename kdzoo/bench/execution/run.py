"""Executing runs: build data, teacher, student and loss from a ``RunSpec`` (``bench/spec.py``).

``execute`` builds them and hands them to the shared Trainer; ``execute_cohort`` does the
same for several specs that differ only in their method, sharing the data stream and teacher.
"""
from __future__ import annotations

import io
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ... import build_loss, build_model
from ...data import build_dataset, make_loader
from ...data.base import DataBundle, TensorSplit, split_train_val
from ...data.shifts import apply_shift
from ...engine import Member, Trainer, distributed, evaluate, resolve_device
from ...engine import runfolder, runlog
from ...engine.progress import Progress
from ...errors import CheckpointError, ConfigError
from ...losses.base import requirements
from ...models.checkpoint import load_weights
from ...registry import LOSSES
from ...teachers import Teacher, check_access
from ...utils import atomic_write_bytes, file_sha256, sha256_bytes
from ..spec import RunSpec
from .provenance import environment


def load_bundle(spec: RunSpec, data_root: str | None) -> DataBundle:
    bundle = build_dataset(spec.dataset, data_root=data_root, val_size=spec.val_size, seed=0, augment=spec.augment)
    if spec.train_fraction < 1.0:
        if not isinstance(bundle.train, TensorSplit):
            raise ConfigError(f"train_fraction needs an in-memory dataset; {spec.dataset} is folder-based")
        n = len(bundle.train)
        k = max(1, int(round(spec.train_fraction * n)))
        # the subset depends on the seed, like the student side's own data would
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + spec.seed))
        bundle.train = bundle.train.subset(perm[:k].sort().values)
    if spec.student_shift:
        # edge-cloud disparity: only the student side's images change (a fixed, seeded transformation)
        bundle.train = apply_shift(bundle.train, spec.student_shift, seed=0)
    if spec.holdout:
        if not isinstance(bundle.train, TensorSplit):
            raise ConfigError(f"tuning needs an in-memory dataset; {spec.dataset} is folder-based")
        # the same split for every trial of a tuning seed; the test split is never looked at
        bundle.train, bundle.val = split_train_val(bundle.train, spec.holdout, seed=spec.seed)
        if bundle.val is None:
            raise ConfigError(f"tune.val_size {spec.holdout:g} holds out no image of the student's "
                              f"{len(bundle.train)}; give a larger share or a number of images")
        bundle.test = None
    return bundle


def build_student(spec: RunSpec, bundle: DataBundle) -> torch.nn.Module:
    torch.manual_seed(spec.seed)  # same seed -> same initial weights for every method
    model = build_model(spec.student, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=bundle.image_size)
    check_model_fits(spec.student, model, bundle)
    return model


def check_model_fits(name: str, model: torch.nn.Module, bundle: DataBundle) -> None:
    """Run one dummy image through the model so a shape mismatch is a clear error, not a traceback."""
    x = torch.zeros(2, bundle.in_channels, *bundle.image_size)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as exc:
        raise ConfigError(f"model '{name}' cannot take {bundle.name} images ({bundle.in_channels}x"
                          f"{bundle.image_size[0]}x{bundle.image_size[1]}): {str(exc).splitlines()[0]}") from exc
    finally:
        model.train(was)
    if out.shape != (2, bundle.num_classes):
        raise ConfigError(f"model '{name}' outputs {tuple(out.shape[1:])} logits but {bundle.name} has "
                          f"{bundle.num_classes} classes")


def teacher_path(spec: RunSpec, root: Path | None) -> str:
    """The teacher's file: a teacher trained by the sweep is named relative to the output folder ``root``."""
    path = str(spec.teacher_ckpt)
    if spec.teacher_run and root is not None and not Path(path).is_absolute():
        return str(Path(root) / path)
    return path


def dependencies(spec: RunSpec, root: Path | None) -> dict[str, str]:
    """The files a run's numbers depend on beyond its settings, by SHA-256: its teacher's weights.

    A teacher trained by the sweep is named in the run's hash by its run, not by its file, so a
    checkpoint or result records the file's digest: one trained on other weights is never resumed
    or reported (see ``engine.recovery.state_problem`` and ``bench.execution.store.check_done_run``)."""
    if spec.teacher is None or not spec.teacher_ckpt:
        return {}
    path = Path(teacher_path(spec, root))
    return {"teacher": file_sha256(path)} if path.is_file() else {}


def load_teacher(spec: RunSpec, bundle: DataBundle, root: Path | None = None) -> Teacher | None:
    if spec.teacher is None:
        return None
    if not spec.teacher_ckpt:
        raise ConfigError(f"teacher '{spec.teacher}' needs a checkpoint (--teacher-ckpt PATH)")
    model = build_model(spec.teacher, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=bundle.image_size)
    load_teacher_weights(model, teacher_path(spec, root))
    check_model_fits(spec.teacher, model, bundle)
    return Teacher(model, access=spec.access, budget=spec.teacher_budget)


def load_teacher_weights(model: torch.nn.Module, path: str) -> None:
    """Load a teacher's weights (kdzoo model.pt, RepDistiller {"model": ...}, compiled or DDP-saved)."""
    if not Path(path).is_file():
        raise CheckpointError(f"teacher checkpoint not found: {path}")
    load_weights(model, path, strict=True)


def _loaders(spec: RunSpec, bundle: DataBundle, device: torch.device,
             dist: distributed.DistEnv | None = None) -> tuple[Any, dict[str, Any]]:
    cfg = spec.train
    dist = dist or distributed.DistEnv()
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"batch size {cfg.batch_size} (the global batch) is not divisible by the "
                          f"{dist.world_size} processes")
    on_gpu = device if device.type == "cuda" and isinstance(bundle.train, TensorSplit) else "cpu"
    # under torchrun each rank takes its slice of every global batch
    train = make_loader(bundle, "train", cfg.batch_size, train=True, seed=spec.seed, device=on_gpu,
                        max_batches=cfg.steps_per_epoch, channels_last=cfg.channels_last,
                        world_size=dist.world_size, rank=dist.rank)
    evals = {split: make_loader(bundle, split, cfg.eval_batch_size, train=False, device=on_gpu,
                                channels_last=cfg.channels_last)
             for split in ("val", "test") if getattr(bundle, split) is not None}
    return train, evals


@dataclass
class LogPlace:
    """Where a run is logged when its ``train.log`` asks for it (engine/runlog.py): the folder holding
    ``tensorboard/`` and ``mlflow.db``, the MLflow experiment and the run's name there."""
    root: Path
    experiment: str
    name: str


def _run_logs(specs: list[RunSpec], run_dirs: list[Path | None], places: list[LogPlace | None] | None,
              warn: Any) -> list[runlog.RunLog | None]:
    """One RunLog per run that logs; by default a run is logged in its own folder, under the folder's name."""
    logs: list[runlog.RunLog | None] = []
    for i, (spec, run_dir) in enumerate(zip(specs, run_dirs)):
        place = places[i] if places else None
        if place is None and run_dir is not None:
            place = LogPlace(Path(run_dir), "kdzoo train", Path(run_dir).name)
        if place is None or not runlog.parse(spec.train.log):
            logs.append(None)
            continue
        tags = {runlog.HASH_TAG: spec.config_hash(), "kdzoo.method": spec.method, "kdzoo.student": spec.student,
                "kdzoo.teacher": spec.teacher or "", "kdzoo.access": spec.access, "kdzoo.seed": str(spec.seed)}
        logs.append(runlog.RunLog(spec.train.log, place.root, place.name, experiment=place.experiment,
                                  params=spec.identity(), tags=tags, warn=warn))
    return logs


def execute_cohort(specs: list[RunSpec], run_dirs: list[Path | None], *, data_root: str | None = None,
                   cache_dir: str | Path | None = None, progress: bool | Progress = True,
                   log: Any = None, log_places: list[LogPlace | None] | None = None,
                   titles: list[str] | None = None, on_epoch: Any = None) -> list[dict[str, Any]]:
    """Train ``specs`` (same cohort key) together; return one result record per spec. ``log_places``: where
    each run is logged when its ``train.log`` is on (default: in its run folder). ``titles``: what log lines
    call each run (default "STUDENT METHOD", e.g. "fmnist_teacher ce" for a teacher). ``on_epoch``: the
    trainer's epoch hook (a tuning trial's pruner)."""
    keys = {s.cohort_key() for s in specs}
    if len(keys) != 1:
        raise ConfigError("a cohort's runs must differ only in method and loss settings")
    head = specs[0]
    runlog.check_installed(head.train.log)
    for s in specs:  # refused before data and teacher load; ``requires`` is read from the built loss
        LOSSES.check_kwargs(s.method, s.loss_kwargs)
        check_access(s.method, requirements(build_loss(s.method, **s.loss_kwargs)),
                     s.access if s.teacher else "none")
    # under torchrun: join the process group, one device per local rank (engine/distributed.py)
    dist, device_name = distributed.init_from_env(head.train.device)
    if dist.enabled and head.teacher_budget is not None:
        raise ConfigError("a teacher query budget is counted per process; train budgeted runs without torchrun")
    device = resolve_device(device_name)
    bundle = load_bundle(head, data_root)
    root = Path(run_dirs[0]).parents[1] if run_dirs[0] else None   # the run store's folder (OUT)
    teacher = load_teacher(head, bundle, root=root)
    depends = dependencies(head, root)
    cfg = replace(head.train, pseudo_labels=head.hide_labels or head.train.pseudo_labels, device=device_name)
    for spec, run_dir in zip(specs, run_dirs):  # before anything is written to any of the folders
        if run_dir is not None:
            runfolder.check_run_folder(run_dir, spec.to_dict(), lambda d: RunSpec.from_dict(d).identity(),
                                       "pass another output folder, or delete this one to start over")
    members = []
    for spec, run_dir, title in zip(specs, run_dirs, titles or [""] * len(specs)):
        # built again after build_student seeds the RNG, so a loss with parameters always starts the same
        members.append(Member(spec.method, build_student(spec, bundle), build_loss(spec.method, **spec.loss_kwargs),
                              run_dir=Path(run_dir) if run_dir else None, seed=spec.seed,
                              title=title or f"{spec.student} {spec.method}", run_id=spec.config_hash(),
                              depends=depends))
    train_loader, eval_loaders = _loaders(head, bundle, device, dist)
    # only now, every name and shape checked, are folders written: a typo leaves nothing to block its retry
    for spec, run_dir in zip(specs, run_dirs):
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            if dist.is_main:
                runfolder.write_config(run_dir, spec.to_dict())
    teacher_top1 = float("nan")
    if teacher is not None:
        teacher.to(device)
        if dist.is_main and "test" in eval_loaders:   # a tuning trial has no test split
            teacher_top1 = evaluate(teacher.model, eval_loaders["test"])["top1"]
    warn = log or (lambda message: print(message, file=sys.stderr))
    run_logs = _run_logs(specs, run_dirs, log_places, warn) if dist.is_main else []   # rank 0 logs, as it writes
    logs = {id(m): r for m, r in zip(members, run_logs) if r is not None}

    def log_epoch(m: Member, record: dict[str, Any]) -> None:
        if id(m) in logs:
            logs[id(m)].epoch(m.metrics, m.result.images_per_second)

    trainer = Trainer(members, train_loader, eval_loaders, teacher, cfg, bundle=bundle, cache_dir=cache_dir,
                      progress=progress, log=log, epoch_callbacks=[log_epoch] if logs else [],
                      on_epoch=on_epoch)
    ended: dict[int, str] = {}
    stopped = runfolder.FAILED
    try:
        results = trainer.fit()
        ended = {id(m): r.status for m, r in zip(members, results)}
    except KeyboardInterrupt:
        stopped = runfolder.INTERRUPTED
        raise
    finally:
        for key, run_log in logs.items():
            run_log.close(ended.get(key, stopped))
    env = environment(threads=cfg.cpu_threads if device.type == "cpu" else None)
    records = []
    for spec, m, res in zip(specs, members, results):
        # num_classes: chance level, from which the leaderboard tells a collapsed run from a poor one
        record = {**res.to_dict(), "teacher_top1": teacher_top1, "num_classes": bundle.num_classes,
                  "config_hash": spec.config_hash(),
                  "student_params": sum(p.numel() for p in m.student.parameters()), "depends": depends, **env}
        if m.run_dir is not None and dist.is_main:
            if res.status == runfolder.FINISHED:
                buf = io.BytesIO()
                torch.save(m.evaluated.state_dict(), buf)  # the EMA weights when the run keeps an EMA
                atomic_write_bytes(m.run_dir / runfolder.MODEL, buf.getvalue())
                record["model_sha256"] = sha256_bytes(buf.getvalue())   # a swapped model.pt is found, not used
            runfolder.write_result(m.run_dir, record)
        records.append(record)
    distributed.barrier()  # every rank returns once rank 0 has written the results
    return records


def execute(spec: RunSpec, run_dir: Path | None, **kw: Any) -> dict[str, Any]:
    """Train one run; see ``execute_cohort``."""
    return execute_cohort([spec], [run_dir], **kw)[0]
