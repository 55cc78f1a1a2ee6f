"""The one training loop every method uses.

data -> teacher responses (no grad, eval mode) -> student forward -> loss terms
-> backward/step -> schedule -> evaluation -> checkpoint.

The trainer trains a *cohort*: one or more members (student + loss + optimizer)
in lockstep over the same batches, sharing one teacher forward per batch. A
plain run is a cohort of one, so solo and cohort training run the very same
code. Each member keeps its own RNG state, swapped in around its step, so its
result does not depend on who else is in the cohort. (With one member training
in an epoch the state is swapped in once per epoch instead, which is the same
because nothing between two steps draws from the global RNG: the loaders use
their own generators, the teacher runs in eval mode.)

The step does no host-device synchronization: loss terms are kept on the
device and summed every ``nonfinite_check_every`` steps, when one host sync
checks every member for NaN/Inf; the learning rate is a pure function of the
step. Optimizers are fused where PyTorch has a fused kernel (SGD and AdamW,
on CPU and GPU), which also keeps AMP's GradScaler from syncing.

It never names a method: losses are reached through ``DistillLoss`` only.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from ..losses.base import has_preparation, requirements
from ..teachers import Teacher, check_access
from ..utils import atomic_write_text, jsonl_text
from . import distributed, feature_maps
from .prepare import PrepareContext, default_cache_dir, run_preparation
from .recovery import resume_state, save_checkpoint_keep_previous, state_problem
from .runfolder import CHECKPOINT, DIVERGED, FINISHED, METRICS, PENDING, PRUNED
from .config import TrainConfig
from .device import amp_dtype, resolve_device
from .device import get_rng as _get_rng, rng_generators as _rng_generators, set_rng as _set_rng
from .dot import DistillationOrientedSGD
from .optim import learning_rate, make_optimizer
from .evaluate import evaluate
from .member import EpochCallback, Member, RunResult, sum_terms
from .progress import Progress
from .views import StrongViews


class Trainer:
    """Train a cohort of members on one data stream with one (optional) teacher."""

    def __init__(self, members: list[Member], train_loader: Any, eval_loaders: dict[str, Any],
                 teacher: Teacher | None, config: TrainConfig, *, bundle: Any = None,
                 cache_dir: str | Path | None = None, progress: bool | Progress = True,
                 log: Callable[[str], None] | None = None, access: str = "logits",
                 epoch_callbacks: Sequence[EpochCallback] = (),
                 on_epoch: Callable[[Member, dict[str, Any]], bool] | None = None) -> None:
        if not members:
            raise ConfigError("a trainer needs at least one student")
        self.members = members
        self.train_loader = train_loader
        self.eval_loaders = eval_loaders
        self.teacher = teacher
        self.cfg = config
        self.bundle = bundle
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.device = resolve_device(config.device)
        self.amp = amp_dtype(config.amp, self.device)
        # under torchrun only rank 0 prints, evaluates and writes (see engine/distributed.py)
        self.dist = distributed.current()
        # a Progress passed in is shared with the caller (a sweep's bars); True/False: bars and lines or neither
        self.progress = progress if isinstance(progress, Progress) and self.dist.is_main else \
            Progress(enabled=progress is True and self.dist.is_main)
        self.log = (log or self.progress.print) if self.dist.is_main else (lambda *a, **k: None)
        self.access = teacher.access if teacher is not None else "none"
        self._teacher_table: Tensor | None = None
        self._views: StrongViews | None = None
        self._rng_gens = _rng_generators(self.device)
        # f(member, record) after each member's epoch is evaluated and saved (run logging); they see every
        # member alike, and an exception raised by one propagates out of fit()
        self.epoch_callbacks = list(epoch_callbacks)
        # on_epoch(member, record) before an epoch but the last is saved: True stops it there, status pruned
        self.on_epoch = on_epoch

    # ------------------------------------------------------------------ set-up
    def _check_access(self) -> None:
        for m in self.members:
            check_access(m.name, requirements(m.loss), self.access)
        feature_maps.check_members(self.members, self.teacher)

    def _prepare(self) -> None:
        for m in self.members:
            if not has_preparation(m.loss):
                continue
            if len(self.members) > 1:
                raise ConfigError(f"'{m.name}' has a preparation stage and must train alone, not in a cohort")
            if self.dist.enabled:
                raise ConfigError(f"'{m.name}' has a preparation stage, which runs on one process only; "
                                  f"train it without torchrun")
            ctx = PrepareContext(teacher=self.teacher, train_loader=self.train_loader, bundle=self.bundle,
                                 device=self.device, cache_dir=self.cache_dir, run_dir=m.run_dir,
                                 seed=m.seed, config=self.cfg, progress=self.progress.lines, student=m.student,
                                 name=m.name)
            run_preparation(m.loss, ctx)
            self.train_loader = ctx.train_loader
            m.prepare_queries = int(ctx.queries)

    def _setup_member(self, m: Member) -> None:
        m.student.to(self.device)
        m.loss.to(self.device)
        if self.cfg.channels_last:
            m.student.to(memory_format=torch.channels_last)
        params = [p for p in list(m.student.parameters()) + list(m.loss.parameters()) if p.requires_grad]
        m.clip_params = [p for p in m.student.parameters() if p.requires_grad]
        m.optimizer = make_optimizer(self.cfg, params)
        m.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        if self.cfg.ema_decay > 0:
            m.start_ema()
        model = distributed.wrap_model(feature_maps.student_module(m.student, m.loss), self.device)  # DDP (+ SyncBatchNorm on GPUs) under torchrun
        m.forward = torch.compile(model) if self.cfg.compile else model
        torch.manual_seed(m.seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed(m.seed)
        m.rng = _get_rng(self._rng_gens)
        # last good checkpoint (falls back to checkpoint.prev.pt, warns about corrupt files), None: from scratch
        modules = {"model": m.student, "loss": m.loss, "ema": m.ema}   # a checkpoint must fit each, and be this run's
        ckpt = resume_state(m.run_dir, CHECKPOINT, map_location=self.device,
                            check=lambda c: state_problem(c, m.run_id, m.depends, modules)) if m.run_dir else None
        if ckpt is not None:
            self._restore(m, ckpt)
            if m.active and m.done_epochs < self.cfg.epochs:
                self.log(f"{m.shown}: resuming at epoch {m.done_epochs + 1} of {self.cfg.epochs} "
                         f"({m.done_epochs} done; {m.run_dir})")

    def _restore(self, m: Member, ckpt: dict) -> None:
        m.student.load_state_dict(ckpt["model"])
        m.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("loss"):
            m.loss.load_state_dict(ckpt["loss"])
        if m.ema is not None:
            m.ema.load_state_dict(ckpt["ema"])
        if m.scaler is not None and ckpt.get("scaler"):
            m.scaler.load_state_dict(ckpt["scaler"])
        m.rng = {k: v.cpu() for k, v in ckpt["rng"].items()}
        m.done_epochs = int(ckpt["epoch"])
        m.metrics = list(ckpt["metrics"])
        m.queries = int(ckpt["queries"])
        # a run the epoch hook stopped stays stopped: the decision is saved with its epoch
        m.result = RunResult(**{**ckpt["result"], "status": PRUNED if ckpt["result"].get("status") == PRUNED else PENDING})
        m.prepare_queries = m.result.prepare_queries

    def _save(self, m: Member) -> None:
        if m.run_dir is None or not self.dist.is_main:
            return
        save_checkpoint_keep_previous({
            "epoch": m.done_epochs, "model": m.student.state_dict(), "optimizer": m.optimizer.state_dict(),
            "loss": m.loss.state_dict(), "scaler": m.scaler.state_dict() if m.scaler else None,
            "ema": m.ema.state_dict() if m.ema is not None else None,
            "rng": m.rng, "metrics": m.metrics, "queries": m.queries, "result": m.result.to_dict(),
            "run": m.run_id, "depends": m.depends,
        }, m.run_dir / CHECKPOINT)
        atomic_write_text(m.run_dir / METRICS, jsonl_text(m.metrics))

    def _finish(self, m: Member, status: str, message: str = "") -> None:
        m.result.status = status
        m.result.message = message
        m.record_queries()

    # ---------------------------------------------------------------- teacher
    def _amp_ctx(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _build_teacher_table(self) -> None:
        """Query the teacher once per training image when inputs never change across epochs."""
        loader = self.train_loader
        if not (self.cfg.cache_teacher and getattr(loader, "deterministic", False) and hasattr(loader, "full_pass")):
            return
        table = None
        with self._amp_ctx():
            for x, idx in loader.full_pass(self.cfg.eval_batch_size):
                t = self.teacher(x).float()
                if table is None:
                    table = torch.empty(loader.num_samples, t.shape[1], device=t.device)
                table[idx] = t
        self._teacher_table = table
        for m in self.members:
            if m.done_epochs == 0:
                m.queries += loader.num_samples

    def _teacher_batch(self, x: Tensor, idx: Tensor) -> Tensor | None:
        if self.teacher is None:
            return None
        if self._teacher_table is not None:
            return self._teacher_table[idx]
        with self._amp_ctx():
            t = self.teacher(x).float()
        n = x.shape[0]
        for m in self.members:
            if m.active and m.done_epochs < self.epoch:
                m.queries += n
        return t

    # ------------------------------------------------------------------- loop
    def fit(self) -> list[RunResult]:
        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            torch.set_num_threads(int(self.cfg.cpu_threads))
        try:
            return self._fit()
        finally:
            torch.set_num_threads(threads)

    def _fit(self) -> list[RunResult]:
        self._check_access()
        if self.teacher is not None:
            self.teacher.to(self.device)
            if self.cfg.channels_last:
                self.teacher.model.to(memory_format=torch.channels_last)
            if self.cfg.compile and getattr(self.teacher.model, "_compiled_call_impl", None) is None:
                self.teacher.model.compile()  # in place: the module (and its state_dict keys) stay as they are
        for m in self.members:
            self._setup_member(m)
            if m.done_epochs >= self.cfg.epochs:
                self._finish(m, FINISHED)
        self._prepare()
        self._views = StrongViews.build(self.members, self.train_loader, self.bundle, self.teacher, self.device,
                                        self._amp_ctx)
        if self.teacher is not None and any(m.active for m in self.members):
            self._build_teacher_table()
        start = min((m.done_epochs for m in self.members if m.active), default=self.cfg.epochs)
        with self.progress:
            self._bar = self.progress.task("", total=(self.cfg.epochs - start) * len(self.train_loader))
            for epoch in range(start + 1, self.cfg.epochs + 1):
                if not any(m.active for m in self.members):
                    break
                self.epoch = epoch
                self._train_epoch(epoch)
            self.progress.done(self._bar)
        return [m.result for m in self.members]

    def _train_epoch(self, epoch: int) -> None:
        loader = self.train_loader
        loader.set_epoch(epoch)
        n_steps = len(loader)
        live = [m for m in self.members if m.active and m.done_epochs < epoch]
        if not live:
            return
        for m in live:
            m.student.train()
            m.loss.train()
        # Loss terms stay on the device: ``pending`` holds the detached terms of the steps since
        # the last flush, ``sums`` the running epoch sums; flushing every ``check_every`` steps is
        # also the NaN/Inf check (a non-finite term makes its running sum non-finite for good).
        pending: dict[str, dict[str, list[Tensor]]] = {m.name: {} for m in live}
        sums: dict[str, dict[str, Tensor]] = {m.name: {} for m in live}
        check_every = max(int(self.cfg.nonfinite_check_every), 1)
        swap = len(live) > 1  # one member: its RNG state stays in place for the whole epoch
        if not swap:
            _set_rng(live[0].rng, self._rng_gens)
        seen, t0, lr = 0, time.perf_counter(), float("nan")
        start_queries = {m.name: m.queries for m in live}
        # "3/10 s0 teacher→student kd,dkd": the epoch, then what is trained, so a narrow bar cuts the methods last
        self.progress.describe(self._bar, f"{epoch}/{self.cfg.epochs} "
                                          f"{self.progress.label or '+'.join(m.shown for m in live)}")
        for step, (x, y, idx) in enumerate(loader):
            if step >= n_steps:
                break
            t = self._teacher_batch(x, idx)
            maps = feature_maps.teacher_inputs(self.teacher, live, x, epoch, self._amp_ctx)
            target = t.argmax(dim=1) if self.cfg.pseudo_labels and t is not None else y
            lr = learning_rate(self.cfg, epoch - 1 + step / n_steps)
            view = self._views.batch(x, idx, epoch, step) if self._views is not None else None
            for m in live:
                if m.active:
                    self._step(m, x, t, target, idx, epoch, lr, pending[m.name], swap, view, maps)
            seen += x.shape[0]
            if (step + 1) % check_every == 0:
                self._flush(live, pending, sums, epoch)
                if not any(m.active for m in live):
                    break  # every live member diverged: the rest of the epoch would change nothing
            self.progress.step(self._bar, x.shape[0] * sum(m.active for m in live))
        self._flush(live, pending, sums, epoch)
        if not swap:
            live[0].rng = _get_rng(self._rng_gens)
        seen = distributed.sync_epoch(live, sums, start_queries, seen)  # no-op on one process
        seconds = time.perf_counter() - t0
        for m in live:
            if m.active:
                self._end_epoch(m, epoch, sums[m.name], max(n_steps, 1), seconds / max(len(live), 1), seen, lr)

    def _step(self, m: Member, x: Tensor, t: Tensor | None, target: Tensor, idx: Tensor, epoch: int,
              lr: float, pending: dict[str, list[Tensor]], swap: bool, view: dict | None,
              maps: dict[str, Any]) -> None:
        if swap:
            _set_rng(m.rng, self._rng_gens)
        for g in m.optimizer.param_groups:
            g["lr"] = lr
        with self._amp_ctx():
            s, extra = feature_maps.student_inputs(m.forward(x), m, maps)
            extra.update(StrongViews.loss_inputs(m, view))
        terms = m.loss(s.float(), t, target, epoch=epoch, total_epochs=self.cfg.epochs, x=x, index=idx, **extra)
        total = sum_terms(terms)
        m.optimizer.zero_grad(set_to_none=True)
        if isinstance(m.optimizer, DistillationOrientedSGD):  # one backward pass per gradient it keeps apart
            m.optimizer.backward(terms)
        elif m.scaler is not None:
            m.scaler.scale(total).backward()
            if self.cfg.grad_clip > 0:
                m.scaler.unscale_(m.optimizer)
        else:
            total.backward()
        if self.dist.enabled:  # DDP averages the student's gradients; a loss's own parameters are averaged here
            distributed.average_gradients(m.loss.parameters())
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(m.clip_params, self.cfg.grad_clip)
        if m.scaler is not None:
            m.scaler.step(m.optimizer)
            m.scaler.update()
        else:
            m.optimizer.step()
        if m.ema is not None:
            m.update_ema(self.cfg.ema_decay)
        for k, v in terms.items():
            pending.setdefault(k, []).append(v.detach())
        if swap:
            m.rng = _get_rng(self._rng_gens)

    def _flush(self, live: list[Member], pending: dict[str, dict[str, list[Tensor]]],
               sums: dict[str, dict[str, Tensor]], epoch: int) -> None:
        """Add the pending loss terms to the epoch sums; mark members whose sums are not finite (one host sync)."""
        flags, checked = [], []
        for m in live:
            if not m.active:
                continue
            run = sums[m.name]
            for k, values in pending[m.name].items():
                if values:
                    part = torch.stack(values).float().sum()
                    run[k] = run[k] + part if k in run else part
                    values.clear()
            if run:
                flags.append(torch.stack(list(run.values())).isfinite().all())
                checked.append(m)
        if not checked:
            return
        for m, ok in zip(checked, distributed.all_ranks(torch.stack(flags)).tolist()):
            if not ok:
                m.result.epochs = m.done_epochs
                self._finish(m, DIVERGED, f"non-finite loss in epoch {epoch}")
                self.log(f"[red]{m.shown}: loss became NaN/Inf in epoch {epoch}; run marked diverged[/red]")

    def _end_epoch(self, m: Member, epoch: int, sums: dict[str, Tensor], n_steps: int, seconds: float,
                   seen: int, lr: float) -> None:
        values = torch.stack(list(sums.values())).tolist() if sums else []
        train = {k: v / n_steps for k, v in zip(sums, values)}
        m.record_queries()
        record: dict[str, Any] = {"epoch": epoch, "lr": lr, "train": train, "train_loss": sum(train.values()),
                                  "seconds": seconds, "teacher_queries": m.result.teacher_queries}
        m.student.eval()
        for split, loader in (self.eval_loaders.items() if self.dist.is_main else ()):
            with self._amp_ctx():
                record.update({f"{split}_{k}": v for k, v in evaluate(m.evaluated, loader).items()})
        m.done_epochs = epoch
        r = m.result
        r.record_epoch(epoch, record, seconds, seen)
        m.metrics.append(record)
        if self.on_epoch and epoch < self.cfg.epochs and self.on_epoch(m, record):   # e.g. a tuning trial's pruner
            self._finish(m, PRUNED, f"stopped after epoch {epoch} of {self.cfg.epochs} by the epoch hook")
        self._save(m)
        for callback in self.epoch_callbacks:
            callback(m, record)
        if epoch >= self.cfg.epochs:
            self._finish(m, FINISHED)
        shown = " ".join(f"{k}={v:.3f}" for k, v in train.items())
        judged = f"test_top1={r.top1:.2f}" if "test_top1" in record else f"val_top1={r.val_top1:.2f}"
        self.log(f"{m.shown} epoch {epoch}/{self.cfg.epochs}: {shown} {judged} ({seconds:.1f}s)")

