"""One run's identity: ``RunSpec``, everything that determines a run's result, and its hash.

A ``RunSpec`` is the unit the planner (``bench/plan.py``) makes, the run store hashes and
``execution/run.py`` (like the CLI's ``train``) executes. ``config_hash`` names the run's folder:
the same resolved settings always give the same hash, any change a new one.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..engine import TrainConfig
from ..errors import reject_unknown
from ..utils import file_sha256, sha256_bytes

# Training settings added after runs were first hashed, with their defaults: at the default they
# stay out of the hash, so every run made before they existed keeps its hash (and its results).
TRAIN_HASHED_WHEN_SET = {f.name: f.default for f in fields(TrainConfig) if f.name in ("cpu_threads", "ema_decay",
                                                                                       "dot_delta")}
# Training settings that never enter a hash: where a run executes and what observes it (TensorBoard, MLflow)
# do not change what it is.
TRAIN_NOT_HASHED = ("device", "log")


@dataclass
class RunSpec:
    """Everything that determines a run's result (and so its hash)."""
    dataset: str
    student: str
    method: str = "ce"
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    teacher: str | None = None            # model name of the teacher, None for a student trained alone
    teacher_ckpt: str | None = None       # path to the teacher's weights
    access: str = "logits"
    teacher_budget: int | None = None     # max images the teacher may be queried on
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    train_fraction: float = 1.0           # seeded subset of the training split the student side holds
    hide_labels: bool = False             # student side is unlabeled: losses get the teacher's top-1 as target
    val_size: float = 0.0
    augment: bool = False
    label: str = ""                       # free-form tag (e.g. "shifted"); part of the hash
    student_shift: str = ""               # named shift of the student side's training images (kdzoo.data.shifts)
    teacher_run: str | None = None        # config hash of the run that trained the teacher (bench run store)
    # > 0: a tuning trial (kdzoo tune). This share (< 1) or number of the student's own training images is
    # its validation split and the rest its training data; the test split is dropped unread.
    holdout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        for key in ("student_shift", "holdout"):
            if not d[key]:
                del d[key]                    # unset: absent, so hashes of earlier runs stay valid
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        reject_unknown(d, [f.name for f in fields(cls)], "run setting")
        d = dict(d)
        d["train"] = TrainConfig.from_dict(d.get("train", {}))
        return cls(**d)

    def config_hash(self) -> str:
        """Stable content hash: same resolved config -> same hash; any change -> a new one."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return sha256_bytes(blob.encode())[:16]

    def identity(self) -> dict[str, Any]:
        """The settings that define the run (what its hash covers): no device, defaults of later settings
        left out, the teacher named by its file's digest or by the run that trained it."""
        d = self.to_dict()
        for key in TRAIN_NOT_HASHED:
            d["train"].pop(key, None)
        for key, default in TRAIN_HASHED_WHEN_SET.items():
            if d["train"].get(key) == default:
                del d["train"][key]
        teacher_run = d.pop("teacher_run", None)  # absent from the hash when unset: older hashes stay valid
        if teacher_run:
            # a teacher trained by the sweep is identified by its own run, not by its (not yet written) file
            d["teacher_ckpt"] = f"run:{teacher_run}"
        elif d.get("teacher_ckpt"):
            d["teacher_ckpt"] = file_digest(d["teacher_ckpt"])
        return d

    def cohort_key(self) -> str:
        """Specs with the same key can train in lockstep (they differ only in method)."""
        d = self.to_dict()
        d.pop("method"), d.pop("loss_kwargs")
        return json.dumps(d, sort_keys=True, default=str)


def file_digest(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        return f"missing:{path}"
    return f"{p.name}:{p.stat().st_size}:{file_sha256(p)[:16]}"
