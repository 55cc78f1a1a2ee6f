"""A cohort's member and its result: what the trainer keeps per run (model, loss, optimizer, RNG state,
moving average, teacher queries) and how an evaluated epoch updates the run's result.

Nothing here names a method; the trainer (trainer.py) drives members through their epochs.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..losses.base import DistillLoss
from .runfolder import PENDING


@dataclass
class RunResult:
    status: str = PENDING              # finished | diverged | failed | pruned
    epochs: int = 0                    # epochs completed
    top1: float = float("nan")         # test top-1 (%) after the last epoch
    top5: float = float("nan")
    best_top1: float = float("nan")    # best test top-1 over epochs (the papers' convention; optimistic)
    best_epoch: int = 0
    val_top1: float = float("nan")     # validation top-1 after the last epoch (NaN without a validation split)
    best_val_top1: float = float("nan")     # best validation top-1 over epochs
    best_val_epoch: int = 0                 # its epoch (the first one, on ties)
    top1_at_best_val: float = float("nan")  # test top-1 at that epoch: a best epoch chosen without the test split
    train_seconds: float = 0.0
    images_per_second: float = 0.0
    teacher_queries: int = 0           # images sent to the teacher, preparation stage included
    prepare_queries: int = 0           # of which the preparation stage (e.g. MEKD's generator)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record_epoch(self, epoch: int, record: dict[str, Any], seconds: float, seen: int) -> None:
        """Take in an evaluated epoch's record: the last epoch's numbers, and the best ones so far."""
        self.epochs = epoch
        self.train_seconds += seconds
        self.images_per_second = seen / max(seconds, 1e-9)
        self.top1, self.top5 = record.get("test_top1", float("nan")), record.get("test_top5", float("nan"))
        self.val_top1 = record.get("val_top1", float("nan"))
        if not self.best_top1 >= self.top1:  # also true while best_top1 is NaN
            self.best_top1, self.best_epoch = self.top1, epoch
        if self.val_top1 == self.val_top1 and not self.best_val_top1 >= self.val_top1:
            self.best_val_top1, self.best_val_epoch, self.top1_at_best_val = self.val_top1, epoch, self.top1


@dataclass
class Member:
    """One student of a cohort: its model, loss and where its run lives."""
    name: str
    student: nn.Module
    loss: DistillLoss
    run_dir: Path | None = None
    seed: int = 0
    title: str = ""                    # what log lines call the run (e.g. "teacher fmnist_teacher"); default name
    run_id: str | None = None          # the run's hash: its checkpoints name it, and resume only into it
    depends: dict[str, str] = field(default_factory=dict)   # files it trains on (name -> SHA-256), e.g. teacher
    # set by the trainer
    optimizer: torch.optim.Optimizer | None = None
    scaler: Any = None
    forward: Callable[[Tensor], Tensor] | None = None
    rng: dict[str, Any] = field(default_factory=dict)
    done_epochs: int = 0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    result: RunResult = field(default_factory=RunResult)
    queries: int = 0                   # teacher queries of student training
    prepare_queries: int = 0
    clip_params: list[Tensor] = field(default_factory=list)
    ema: nn.Module | None = None       # moving average of the student's weights (TrainConfig.ema_decay)
    ema_floats: tuple[list[Tensor], list[Tensor]] = field(default_factory=lambda: ([], []))  # (ema, student)
    ema_others: list[tuple[Tensor, Tensor]] = field(default_factory=list)   # integer buffers

    def record_queries(self) -> None:
        """Teacher queries into the result: student training plus the preparation stage."""
        self.result.teacher_queries = self.queries + self.prepare_queries
        self.result.prepare_queries = self.prepare_queries

    @property
    def evaluated(self) -> nn.Module:
        """The weights a run is judged by, and saves: the moving average when it keeps one."""
        return self.ema if self.ema is not None else self.student

    @property
    def shown(self) -> str:
        return self.title or self.name

    @property
    def active(self) -> bool:
        return self.result.status == PENDING

    def start_ema(self) -> None:
        """Keep a moving average of the student's weights (``TrainConfig.ema_decay`` > 0)."""
        self.ema = copy.deepcopy(self.student).eval().requires_grad_(False)
        # state_dict() tensors share storage with the modules, so updating them updates the models
        pairs = list(zip(self.ema.state_dict().values(), self.student.state_dict().values()))
        self.ema_floats = ([e for e, _ in pairs if e.is_floating_point()],
                           [s for e, s in pairs if e.is_floating_point()])
        self.ema_others = [(e, s) for e, s in pairs if not e.is_floating_point()]

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema <- decay * ema + (1 - decay) * weights, for every parameter and float buffer (BatchNorm
        statistics too); integer buffers (BatchNorm's batch counter) are copied."""
        if self.ema_floats[0]:
            torch._foreach_lerp_(self.ema_floats[0], self.ema_floats[1], 1.0 - decay)
        for e, s in self.ema_others:
            e.copy_(s)


EpochCallback = Callable[[Member, dict[str, Any]], None]


def sum_terms(terms: dict[str, Tensor]) -> Tensor:
    """The objective; like ``sum(terms.values())`` without the extra ``0 +`` op."""
    it = iter(terms.values())
    total = next(it)
    for v in it:
        total = total + v
    return total
