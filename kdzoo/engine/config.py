"""Training settings shared by every method."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ..errors import ConfigError, did_you_mean, reject_unknown
from .dot import DOT_DELTA, check_momenta
from .runlog import OFF, parse as parse_log


def setting(default: Any, help: str) -> Any:
    """A TrainConfig field: its default and its help, written once; ``kdzoo train``'s options are derived
    from them (cli/options.py), so the command line never re-types a default."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Training settings shared by every method: a recipe's ``train:`` block and ``kdzoo train``'s options."""
    epochs: int = setting(10, "passes over the training set")
    batch_size: int = setting(128, "images per optimizer step (the global batch under torchrun)")
    optimizer: str = setting("sgd", "sgd | adamw | dot (SGD with separate momenta for the task and the "
                                    "distillation gradients)")
    lr: float = setting(0.05, "peak learning rate")
    momentum: float = setting(0.9, "SGD momentum")
    nesterov: bool = setting(False, "Nesterov momentum")
    weight_decay: float = setting(5e-4, "L2 weight decay")
    schedule: str = setting("cosine", "learning-rate schedule: cosine | step | constant")
    milestones: list[int] = setting([], "epochs after which a step schedule multiplies the rate by gamma")
    gamma: float = setting(0.1, "factor of a step schedule at each milestone")
    warmup_epochs: float = setting(0.0, "linear learning-rate warm-up, in epochs")
    grad_clip: float = setting(0.0, "max global gradient norm; 0: no clipping")
    dot_delta: float = setting(DOT_DELTA, "optimizer dot: the task gradient keeps momentum - delta, the "
                                          "distillation gradient momentum + delta")
    ema_decay: float = setting(0.0, "evaluate and save a moving average of the weights with this decay "
                                    "(e.g. 0.999); 0: off")
    amp: str = setting("auto", "mixed precision on a GPU: auto (bf16 where supported) | off | bf16 | fp16")
    channels_last: bool = setting(False, "channels-last memory format")
    compile: bool = setting(False, "torch.compile the student")
    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    # Part of a run's identity: on a CPU the thread count changes float summation order, hence
    # the trained weights, so it is fixed (not "all cores") to give the same numbers with any --workers.
    cpu_threads: int = setting(1, "torch threads of a run on a CPU (the count changes the numbers)")
    seed: int = setting(0, "seed of the initial weights, the data order and augmentation")
    steps_per_epoch: int | None = setting(None, "cap on batches per epoch (quick runs, tests)")
    eval_batch_size: int = setting(512, "batch size of evaluation")
    cache_teacher: bool = setting(True, "query the teacher once per training image when the inputs never "
                                        "change")
    pseudo_labels: bool = setting(False, "train on the teacher's top-1 instead of the dataset's labels")
    nonfinite_check_every: int = setting(25, "optimizer steps between checks for a NaN/Inf loss")
    log: str = setting(OFF, "log the run's scalars: off | tensorboard | mlflow | tensorboard,mlflow "
                            "(engine/runlog.py); like device, never part of a run's hash")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self._check_types()
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be a positive integer, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size}")
        if float(self.lr) <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        choices = {"optimizer": ("sgd", "adamw", "dot"), "schedule": ("cosine", "step", "constant"),
                   "amp": ("auto", "off", "bf16", "fp16")}
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ConfigError(f"{key} '{value}' is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}")
        if self.optimizer == "dot":
            self._check_dot()
        elif float(self.dot_delta) != DOT_DELTA:
            raise ConfigError(f"dot_delta is a setting of optimizer dot; set optimizer: dot (got optimizer "
                              f"'{self.optimizer}')")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if int(self.cpu_threads) < 1:
            raise ConfigError(f"cpu_threads must be a positive integer, got {self.cpu_threads}")
        if self.steps_per_epoch is not None and int(self.steps_per_epoch) < 1:
            raise ConfigError(f"steps_per_epoch must be a positive integer, got {self.steps_per_epoch}")
        for key in ("momentum", "weight_decay", "warmup_epochs", "grad_clip"):
            if not float(getattr(self, key)) >= 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not float(self.gamma) > 0:
            raise ConfigError(f"gamma must be > 0, got {self.gamma}")
        parse_log(self.log)
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ConfigError(f"device '{self.device}' is not a device; use auto, cpu, cuda or cuda:N") from None

    def _check_dot(self) -> None:
        """DOT keeps two gradients apart; settings that act on one combined gradient are refused."""
        check_momenta(float(self.momentum), float(self.dot_delta))
        if float(self.grad_clip) > 0:
            raise ConfigError("optimizer dot does not support grad_clip (it would clip the task gradient only); "
                              "set grad_clip: 0")
        if self.amp == "fp16":
            raise ConfigError("optimizer dot does not support amp fp16 (loss scaling); use amp bf16 or off")
        if self.nesterov:
            raise ConfigError("optimizer dot has no Nesterov variant; set nesterov: false")

    def _check_types(self) -> None:
        """Wrong types (e.g. ``epochs: ten`` in a recipe, or a NaN rate) are ConfigErrors, not tracebacks."""
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, int) or f.name == "steps_per_epoch":
                ok, kind = (value is None and f.name == "steps_per_epoch") or (
                    isinstance(value, int) and not isinstance(value, bool)), "an integer"
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                kind = "a finite number"
            elif isinstance(default, str):
                ok, kind = isinstance(value, str), "a string"
            elif f.name == "milestones":
                ok = isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool)
                                                              for v in value)
                kind = "a list of integers (epochs)"
            else:
                continue
            if not ok:
                raise ConfigError(f"{f.name} must be {kind}, got {value!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        reject_unknown(d, [f.name for f in fields(cls)], "training setting")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
