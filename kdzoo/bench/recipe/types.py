"""The recipe as plain dataclasses (what ``load_recipe`` returns) and the keys each part of a recipe allows.

The schema and its meaning are documented in recipe.py, which builds these from a YAML file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

METRICS = ("top1", "top1_at_best_val")   # never best_top1: an epoch picked on the test split
TOP_KEYS = ("name", "description", "dataset", "teachers", "pairs", "methods", "access", "seeds", "train",
            "student_data", "metric", "plugins", "reference", "slurm", "tune")
TEACHER_KEYS = ("model", "ckpt", "train", "augment", "seed")
PAIR_KEYS = ("teacher", "student", "method_args", "train", "skip")
METHOD_KEYS = ("name", "label", "args", "access", "train")
REFERENCE_KEYS = ("teacher", "student", "method", "top1", "source", "access", "note")
TEACHER_METHOD = "teacher"   # reference entries about the teacher's own accuracy

# Method labels and teacher names are printed in tables, leaderboard.md cells, "tied with" lists (joined
# by "; ") and rich markup: they keep to characters none of those give a meaning to.
NAME_CHARS = "letters, digits and _ . + - = : / @ ( )"
SAFE_NAME = re.compile(r"[A-Za-z0-9_.+=:/@()-]{1,200}")


def name_problem(name: str) -> str | None:
    """None for a safe label or teacher name, else what is wrong with it."""
    if SAFE_NAME.fullmatch(name):
        return None
    bad = next((ch for ch in name if not SAFE_NAME.fullmatch(ch)), None)
    if bad is None:
        return "is empty" if not name else "is longer than 200 characters"
    return f"may hold only {NAME_CHARS} (not {bad!r})"


@dataclass
class TeacherEntry:
    name: str                          # key in `teachers:`
    model: str                         # architecture
    ckpt: str | None = None            # absolute path after expansion; None: trained by the sweep
    train: dict[str, Any] = field(default_factory=dict)
    augment: bool = False
    seed: int = 0


@dataclass
class MethodEntry:
    loss: str
    label: str
    args: dict[str, Any] = field(default_factory=dict)
    access: list[str] | None = None    # None: the recipe's access list
    train: dict[str, Any] = field(default_factory=dict)   # TrainConfig overrides for this method's runs


@dataclass
class PairEntry:
    teacher: str                       # a key of `teachers:`
    student: str                       # model name
    method_args: dict[str, dict[str, Any]] = field(default_factory=dict)   # label -> overrides
    train: dict[str, Any] = field(default_factory=dict)
    skip: list[str] = field(default_factory=list)   # method labels this pair does not run


@dataclass
class ReferenceEntry:
    teacher: str
    student: str
    method: str                        # a method label, or "teacher"
    top1: float
    source: str
    access: str | None = None
    note: str = ""


@dataclass
class StudentData:
    train_fraction: float = 1.0
    hide_labels: bool = False
    augment: bool = False
    val_size: float = 0.0
    teacher_budget: int | None = None
    student_shift: str = ""            # e.g. "rotate:25+noise:20" (kdzoo.data.shifts), training split only


@dataclass
class SlurmSettings:
    partition: str | None = None
    time_min: int = 720
    gpus_per_job: int = 1
    cpus_per_task: int = 8
    mem_gb: float | None = None
    array_parallelism: int = 16
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    additional: dict[str, Any] = field(default_factory=dict)   # extra sbatch options


@dataclass
class PrunerSettings:
    """Optuna's successive halving over epochs (a trial goes on past epoch ``min_epochs * reduction_factor**k``
    only if it is among the best 1/reduction_factor of its study's trials at that epoch), or Hyperband
    (several such brackets, each trial in one)."""
    name: str = "successive_halving"   # successive_halving | hyperband
    min_epochs: int = 1
    reduction_factor: int = 3


@dataclass
class TuneSettings:
    """The ``tune:`` block (kdzoo tune): an equal search budget per (pair, method, access), on validation data."""
    trials: int                        # per study, the same for every method, ce included
    search: dict[str, Any]             # TrainConfig field -> kdzoo.space Float/Int/Choice, searched by every method
    val_size: float = 0.2              # share (< 1) or number of the student's own training images held out
    seed: int = 0                      # the trials' run seed: student subset, validation split, init, batch order
    objective: str = "val_top1"        # validation top-1 after the last epoch
    sampler: str = "tpe"               # tpe | random
    sampler_seed: int = 0
    startup_trials: int | None = None  # TPE's random trials before it models (None: Optuna's default)
    pruner: PrunerSettings | None = None
    start_from_defaults: bool = True   # trial 0 of every study is its configuration in the recipe


@dataclass
class Recipe:
    name: str
    dataset: str
    teachers: dict[str, TeacherEntry]
    pairs: list[PairEntry]
    methods: list[MethodEntry]
    description: str = ""
    access: list[str] = field(default_factory=lambda: ["logits"])
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=dict)
    student_data: StudentData = field(default_factory=StudentData)
    metric: str = "top1"
    plugins: list[str] = field(default_factory=list)     # resolved: absolute .py paths or module names
    reference: list[ReferenceEntry] = field(default_factory=list)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    tune: TuneSettings | None = None   # kdzoo tune's settings; kdzoo bench ignores them
    path: str = ""                     # the file it came from
    text: str = ""                     # its YAML text, copied into the output folder

    def method(self, label: str) -> MethodEntry:
        return next(m for m in self.methods if m.label == label)

    def access_for(self, method: MethodEntry) -> list[str]:
        return list(method.access if method.access is not None else self.access)

    def student_train(self, pair: PairEntry, method: MethodEntry) -> dict[str, Any]:
        """The TrainConfig overrides of ``method``'s runs on ``pair``: recipe < pair < method (the most
        specific block wins, so a method entry can say ``optimizer: dot`` beside its plain twin)."""
        return {**self.train, **pair.train, **method.train}


__all__ = ["METHOD_KEYS", "METRICS", "MethodEntry", "PAIR_KEYS", "PairEntry", "REFERENCE_KEYS", "Recipe",
           "PrunerSettings", "ReferenceEntry", "SlurmSettings", "StudentData", "TEACHER_KEYS", "TEACHER_METHOD",
           "TOP_KEYS", "TeacherEntry", "TuneSettings"]
