r"""One run on several processes: ``torchrun --nproc_per_node=N -m kdzoo train ...``.

torchrun starts N copies of the command and tells each its place through the
environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`init_from_env` reads them, joins the process group
(NCCL on GPUs, gloo on CPUs) and picks the device of the local rank. Without
those variables (or with ``WORLD_SIZE=1``) everything here is a no-op and a
run is an ordinary single-process run. Example (ImageNet, 8 GPUs, global batch 256)::

    torchrun --nproc_per_node=8 -m kdzoo train --dataset imagenet --student tv:resnet18 \
        --teacher tv:resnet34 --teacher-ckpt resnet34.pth --method kd --augment \
        --batch-size 256 --lr 0.1 --epochs 100 --schedule step --milestones 30 60 90 --weight-decay 1e-4

How a distributed run relates to a single-process one
------------------------------------------------------
* ``--batch-size`` is the **global** batch. Every rank walks the same seeded
  sequence of global batches and takes the r-th contiguous slice of each
  (``B / W`` images), so the gradients DistributedDataParallel averages over
  ranks are the gradient of the single-process run on the same global batch:
  the same learning rate, schedule and number of steps apply, and the final
  weights agree with a one-process run up to float summation order. The
  global batch must be divisible by the world size; only a last, incomplete
  batch (when the training set is not a multiple of ``B``) is split unevenly,
  which weights its images slightly differently.
* BatchNorm: on GPUs the student's BatchNorm layers become ``SyncBatchNorm``,
  so batch statistics are over the global batch, as in one process. PyTorch's
  SyncBatchNorm does not run on CPU tensors, so CPU (gloo) runs keep per-rank
  BatchNorm statistics: BN models then differ slightly from a single-process
  run; BN-free models agree.
* Losses that compute statistics over the batch (rather than averaging
  per-image terms) see each rank's shard, not the global batch.
* The teacher answers for each rank's shard; query counts, training losses and
  throughput are summed/averaged over ranks before rank 0 records them.
* Only rank 0 evaluates, prints and writes metrics, checkpoints and weights;
  every rank reads the checkpoint when a run resumes.

Learning rate and batch size (the papers' settings)
----------------------------------------------------
The papers' recipes fix the global batch and its learning rate: the CIFAR-100
protocol of RepDistiller/mdistiller (KD, DKD, MLKD, logit standardization, RLD,
MCLD) uses batch 64 with lr 0.05 (0.01 for MobileNetV2/ShuffleNet students),
240 epochs, decay x0.1 at 150/180/210, weight decay 5e-4, on one GPU. On
ImageNet the torchvision/CRD protocol is batch 256 with lr 0.1 (e.g. 8 GPUs x
32), 100 epochs (decay at 30/60/90, weight decay 1e-4); mdistiller's ImageNet
configs use batch 512 with lr 0.2, the same ratio. Running those
recipes on more GPUs keeps ``--batch-size`` (global) and ``--lr`` unchanged.
To change the global batch, follow the linear scaling rule (Goyal et al.,
2017): scale the learning rate with the global batch, ``lr = base_lr * B /
base_B`` (e.g. ImageNet batch 1024 -> lr 0.4), with a few epochs of linear
warm-up (``--warmup-epochs``) for large batches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly one-process) run."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def env_from_vars() -> DistEnv:
    """Rank, world size and local rank from torchrun's environment variables (no process group)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"bad distributed environment: RANK={rank}, WORLD_SIZE={world}")
    return DistEnv(rank=rank, world_size=world, local_rank=local)


def current() -> DistEnv:
    """The process group this process belongs to, or a one-process ``DistEnv``."""
    if is_initialized():
        dist = torch.distributed
        return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=_env_int("LOCAL_RANK", dist.get_rank()), backend=str(dist.get_backend()))
    return DistEnv()


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def is_main() -> bool:
    """True on rank 0 and in single-process runs: the process that prints and writes."""
    return current().is_main


def world_size() -> int:
    return current().world_size


def init_from_env(device: str = "auto") -> tuple[DistEnv, str]:
    """Join the process group torchrun set up, if any; return it and the device name to train on.

    ``device`` is the user's choice (``auto | cpu | cuda | cuda:N``). Under
    torchrun, a GPU run uses ``cuda:LOCAL_RANK`` with NCCL; a CPU run uses gloo.
    Calling it again in the same process reuses the group.
    """
    env = env_from_vars()
    if not env.enabled:
        return env, device
    if not torch.distributed.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run on one process")
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if want_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{device}' requested but no CUDA GPU is available; use --device cpu")
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} GPU(s) are "
                              f"visible; start at most that many processes per node")
        torch.cuda.set_device(env.local_rank)
        device, backend = f"cuda:{env.local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    if not is_initialized():
        torch.distributed.init_process_group(backend=backend)
    return current(), device


def shutdown() -> None:
    """Leave the process group (end of a torchrun command); a no-op otherwise."""
    if is_initialized():
        torch.distributed.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        torch.distributed.barrier()


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``model`` (SyncBatchNorm first on GPUs); ``model`` itself if one process.

    The conversion happens in place on ``model``'s children, so parameters,
    buffers and state-dict keys stay those of ``model`` (checkpoints need no
    ``module.`` prefix) and an optimizer built on them keeps working.
    """
    if not world_size() > 1:
        return model
    if device.type != "cpu" and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        for name, child in list(model.named_children()):
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def average_gradients(params: Iterable[Tensor]) -> None:
    """Average the gradients of parameters DDP does not own (e.g. a loss's own parameters) over ranks."""
    params = [p for p in params if p.requires_grad]
    if not params or not world_size() > 1:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params])
    torch.distributed.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        k = p.numel()
        g = flat[offset:offset + k].view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        offset += k


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum ``values`` (float) over ranks; returns ``values`` unchanged in one process."""
    if world_size() > 1:
        values = values.clone()
        torch.distributed.all_reduce(values)
    return values


def all_ranks(flags: Tensor) -> Tensor:
    """Element-wise: is the flag set on every rank? (bool tensor in, bool tensor out)"""
    if not world_size() > 1:
        return flags
    return all_reduce_sum((~flags).float()) == 0


def sync_epoch(members: Sequence[Any], sums: dict[str, dict[str, Tensor]], start_queries: dict[str, int],
               seen: int) -> int:
    """End of a distributed epoch: average each member's loss-term sums and add up its teacher queries and
    the images seen over ranks (in place); returns the images seen by all ranks. One collective."""
    if not world_size() > 1:
        return seen
    parts: list[Tensor] = []
    device = torch.device("cuda", torch.cuda.current_device()) if current().backend == "nccl" else torch.device("cpu")
    head = torch.tensor([float(seen)] + [float(m.queries - start_queries[m.name]) for m in members],
                        dtype=torch.float64, device=device)
    parts.append(head)
    for m in members:
        parts.extend(sums[m.name][k].detach().reshape(1).to(device, torch.float64) for k in sorted(sums[m.name]))
    total = all_reduce_sum(torch.cat(parts))
    for i, m in enumerate(members):
        m.queries = start_queries[m.name] + int(round(float(total[1 + i])))
    offset = 1 + len(members)
    for m in members:
        for k in sorted(sums[m.name]):
            sums[m.name][k] = (total[offset] / world_size()).to(sums[m.name][k].dtype)
            offset += 1
    return int(round(float(total[0])))
