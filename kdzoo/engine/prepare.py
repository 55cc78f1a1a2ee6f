"""The preparation hook: run the stage a loss declares (``DistillLoss.preparation``) once before
student training, without knowing which method asked for it.

The stage is found by name in ``kdzoo.registry.STAGES`` (kdzoo/stages/). Everything around it is
here, the same for every stage:

- **cache**: a product is identified by what it was made from (the teacher's weights, the student
  side's images, the access level, the seed, the data normalization) and the stage's settings. It is
  stored once as ``cache_dir/<stage>/<digest>.pt`` (written atomically, under a file lock so two
  processes wanting the same product make it once) and reused, never remade, by every later run
  with the same key, whatever its student phase. A file whose recorded key differs is refused.
- **budget**: the teacher queries the stage would spend (when not cached) plus those the student
  phase spends up front (``Preparation.student_queries``) are checked against the teacher's query
  budget before anything runs.
- **run folder**: the record (``runfolder.PREPARED``: key, digest, queries, seconds, whether it was
  made or reused) and the stage's artifacts (``runfolder.prepared_file``) go next to the run.
- **queries**: a reused product still costs what it cost when it was made, so a run reports the
  method's full price (``PrepareContext.queries``).

Then the loss receives the product (``use_prepared``) and may replace the training loader.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import AccessError, ConfigError, differences
from ..losses.base import DistillLoss
from ..registry import STAGES
from ..teachers import Teacher
from ..utils import atomic_write_bytes, atomic_write_json, sha256_bytes
from . import runfolder
from .terminal import say
from .config import TrainConfig


def default_cache_dir() -> Path:
    """Where products are cached when no folder is given: ``$KDZOO_CACHE``, else the user's cache folder
    (``$XDG_CACHE_HOME/kdzoo`` or ``~/.cache/kdzoo``); never the working directory."""
    if os.environ.get("KDZOO_CACHE"):
        return Path(os.environ["KDZOO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdzoo"


@dataclass
class PrepareContext:
    """What a preparation stage and the loss's ``use_prepared`` may use. ``use_prepared`` may replace
    ``train_loader``."""
    teacher: Teacher | None
    train_loader: Any
    bundle: Any
    device: torch.device
    cache_dir: Path
    run_dir: Path | None
    seed: int
    config: TrainConfig
    progress: bool = True
    student: nn.Module | None = None
    name: str = ""                     # the run's method, for messages
    # set here: teacher queries the stage cost (a product reused from the cache still counts what it
    # cost when it was made, so the run reports the method's full price), and the record
    queries: int = 0
    record: dict[str, Any] | None = None


def product_key(settings: dict[str, Any], ctx: PrepareContext) -> dict[str, Any]:
    """What a product is made from: the teacher, the student side's images, how the teacher answers,
    the seed, the normalization, and the stage's settings."""
    images = getattr(ctx.bundle.train, "images", None)
    if ctx.teacher is None or images is None:
        raise ConfigError(f"{ctx.name}: its preparation needs a teacher and an in-memory student-side training "
                          f"split (TensorSplit)")
    data = sha256_bytes(str(tuple(images.shape)).encode() + images.contiguous().numpy().tobytes())
    return {"teacher": ctx.teacher.digest(), "data": data[:16], "access": ctx.teacher.access, "seed": ctx.seed,
            "mean": list(ctx.bundle.mean), "std": list(ctx.bundle.std), **settings}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), released on exit or when the process ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run_preparation(loss: DistillLoss, ctx: PrepareContext) -> dict[str, Any] | None:
    """Run the stage ``loss`` declares for the teacher's access level (or nothing when it declares none);
    hand the product to the loss; return the record written next to the run."""
    decl = loss.preparation(ctx)
    if decl is None:
        return None
    stage = STAGES.build(decl.stage)
    key = product_key(decl.settings, ctx)
    digest = sha256_bytes(json.dumps(key, sort_keys=True).encode())[:16]
    # built first, before anything else draws from the global RNG: its untrained weights are part of the product
    product = stage.build(decl.settings, ctx)
    cache = Path(ctx.cache_dir) / decl.stage
    with _locked(cache / f"{digest}.lock"):
        stored = _load(cache / f"{digest}.pt", key, ctx)
        _check_budget(ctx, decl.student_queries, 0 if stored else stage.queries_needed(decl.settings, ctx))
        if stored is None:
            start = time.perf_counter()
            queries, artifacts = stage.train(product, decl.settings, ctx)
            info = {"key": key, "hash": digest, "stage": decl.stage, "queries": int(queries),
                    "seconds": time.perf_counter() - start}
            buf = io.BytesIO()
            torch.save({"product": product.state_dict(), "info": info, "artifacts": artifacts}, buf)
            atomic_write_bytes(cache / f"{digest}.pt", buf.getvalue())
            record = {**info, "trained": True}
        else:
            product.load_state_dict(stored["product"])
            artifacts, record = stored["artifacts"], {**stored["info"], "trained": False}
    product.eval().requires_grad_(False)
    if ctx.run_dir is not None:  # next to the run: what the stage made, and what it cost
        run = Path(ctx.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        for name, data in artifacts.items():
            atomic_write_bytes(run / runfolder.prepared_file(name), data)
        atomic_write_json(run / runfolder.PREPARED, record)
    if ctx.progress:
        say(f"{ctx.name}: {decl.stage} {digest} {'made' if record['trained'] else 'reused from cache'} "
            f"({record['queries']} teacher queries spent on it)")
    ctx.queries, ctx.record = int(record["queries"]), record
    loss.use_prepared(product, ctx)
    return record


def _load(path: Path, key: dict[str, Any], ctx: PrepareContext) -> dict[str, Any] | None:
    """The cached product for ``key``, or None; a file made from anything else is refused, never used."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location=ctx.device, weights_only=True)
    made_with = state.get("info", {}).get("key")
    if made_with != key:  # a shortened hash's collision, or a hand-placed file
        raise ConfigError(f"{ctx.name}: cached product {path} was made with other settings "
                          f"({differences(made_with or {}, key)}); delete it to make a new one")
    return state


def _check_budget(ctx: PrepareContext, student: int, stage: int) -> None:
    left = ctx.teacher.remaining if ctx.teacher is not None else None
    if left is not None and stage + student > left:
        parts = [f"{stage} to prepare" if stage else "", f"{student} for the student phase" if student else ""]
        raise AccessError(f"{ctx.name}: needs about {stage + student} teacher queries "
                          f"({', '.join(p for p in parts if p)}), {left} are left in the budget; "
                          f"lower its settings or raise the budget")


__all__ = ["PrepareContext", "default_cache_dir", "product_key", "run_preparation"]
