"""Transfer evaluation: how well a frozen student's features serve another dataset.

As in the MCLD paper (and CRD before it), a student trained (or distilled) on
one dataset is frozen, its penultimate features (``model.forward_features``,
the pooled input of the classifier) are extracted on another dataset's train
and test splits, and a linear classifier -- a logistic-regression probe -- is
fitted on the train features; its top-1 on the test features is the transfer
score. The student is never updated and sees no augmentation.

Input rule: the target's images are brought to the student's input format.
Each batch (normalized by the target dataset's mean/std) is mapped back to
[0, 1] pixels, its channels converted (grey -> RGB by repeating the channel,
RGB -> grey by ITU-R BT.601 luminance 0.299 R + 0.587 G + 0.114 B; other
combinations are refused), resized to the student's training image size with
bilinear interpolation (antialiased when shrinking, e.g. STL-10 96x96 ->
32x32), and normalized with the mean/std of the student's training set.

The probe: features are standardized with the train features' mean and std;
multinomial logistic regression with an L2 penalty ``weight_decay / 2 *
||W||^2`` on the weights (not the bias) is fitted either by full-batch L-BFGS
(default; ``epochs`` = maximum iterations, deterministic from a zero start) or
by mini-batch SGD with momentum and a cosine schedule (``epochs`` = passes;
shuffled by a generator seeded with ``seed``). With a validation split
(``val_size``), each weight decay of a small grid is fitted on the rest of the
train split, the best on validation is refitted on the whole train split, and
that probe is scored on the test split.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data import build_dataset, make_loader
from ..engine import runfolder
from ..engine.device import resolve_device
from ..errors import CheckpointError, ConfigError, did_you_mean
from ..models import create
from ..models.checkpoint import load_weights

DEFAULT_WEIGHT_DECAY = 1e-4
WEIGHT_DECAY_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
LUMINANCE = (0.299, 0.587, 0.114)
SOLVERS = ("lbfgs", "sgd")


@dataclass(frozen=True)
class InputFormat:
    """What a model expects: channels, image size and the normalization of its training data."""
    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, bundle: Any) -> "InputFormat":
        return cls(int(bundle.in_channels), tuple(int(s) for s in bundle.image_size),  # type: ignore[arg-type]
                   tuple(float(m) for m in bundle.mean), tuple(float(s) for s in bundle.std))


def _per_channel(values: Sequence[float], c: int, like: Tensor) -> Tensor:
    v = list(values)
    if len(v) not in (1, c):
        raise ConfigError(f"normalization has {len(v)} values for {c}-channel images")
    return torch.tensor(v * (c // len(v)), dtype=like.dtype, device=like.device).view(1, c, 1, 1)


def adapt_batch(x: Tensor, source: InputFormat, target: InputFormat) -> Tensor:
    """Images normalized as ``source`` -> images in the format ``target`` (see the module's input rule)."""
    c = x.shape[1]
    if c == target.channels and tuple(x.shape[-2:]) == target.size and source.mean == target.mean \
            and source.std == target.std:
        return x
    x = x.float() * _per_channel(source.std, c, x.float()) + _per_channel(source.mean, c, x.float())
    if c != target.channels:
        if c == 1:
            x = x.expand(-1, target.channels, -1, -1)
        elif c == 3 and target.channels == 1:
            x = (x * torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise ConfigError(f"cannot convert {c}-channel images to the {target.channels} channels the student "
                              f"takes (only grey <-> RGB is supported)")
    h, w = x.shape[-2:]
    if (h, w) != target.size:
        shrink = target.size[0] < h or target.size[1] < w
        x = F.interpolate(x, size=target.size, mode="bilinear", align_corners=False, antialias=shrink)
    return (x - _per_channel(target.mean, target.channels, x)) / _per_channel(target.std, target.channels, x)


@torch.no_grad()
def extract_features(model: nn.Module, loader: Any, adapt: Callable[[Tensor], Tensor] | None = None,
                     device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """``(features (N, D) float32, labels (N,))`` of every batch of ``loader``, the model in eval mode."""
    if not hasattr(model, "forward_features"):
        raise ConfigError(f"{type(model).__name__} has no forward_features(x); transfer evaluation needs the "
                          f"penultimate features")
    was = model.training
    model.eval()
    feats, labels = [], []
    try:
        for batch in loader:
            x, y = batch[0].to(device), batch[1]
            if adapt is not None:
                x = adapt(x)
            f = model.forward_features(x)
            feats.append(f.float().flatten(1))
            labels.append(y.to(f.device))
    finally:
        model.train(was)
    if not feats:
        raise ConfigError("transfer evaluation got an empty split")
    return torch.cat(feats), torch.cat(labels).long()


class LinearProbe(nn.Module):
    """Standardize features with fixed statistics, then one linear layer."""

    def __init__(self, mean: Tensor, std: Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.numel(), num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, f: Tensor) -> Tensor:
        return self.linear((f - self.mean) / self.std)


def fit_linear_probe(features: Tensor, labels: Tensor, num_classes: int, *, weight_decay: float = DEFAULT_WEIGHT_DECAY,
                     solver: str = "lbfgs", epochs: int = 100, seed: int = 0, batch_size: int = 256,
                     lr: float = 0.1) -> LinearProbe:
    """Fit multinomial logistic regression on ``features``; see the module docstring."""
    if solver not in SOLVERS:
        raise ConfigError(f"probe solver '{solver}' is not one of {', '.join(SOLVERS)}{did_you_mean(solver, SOLVERS)}")
    if int(epochs) < 1:
        raise ConfigError(f"probe epochs must be a positive integer, got {epochs}")
    if weight_decay < 0:
        raise ConfigError(f"probe weight decay must be >= 0, got {weight_decay}")
    features = features.float()
    labels = labels.long().to(features.device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ConfigError(f"probe labels must lie in [0, {num_classes}), got [{int(labels.min())}, "
                          f"{int(labels.max())}]")
    mean = features.mean(0)
    std = features.std(0, unbiased=False).clamp_min(1e-6)
    probe = LinearProbe(mean, std, num_classes).to(features.device)
    z = (features - mean) / std
    w, b = probe.linear.weight, probe.linear.bias

    def objective(zb: Tensor, yb: Tensor) -> Tensor:
        return F.cross_entropy(F.linear(zb, w, b), yb) + 0.5 * weight_decay * w.pow(2).sum()

    with torch.enable_grad():
        if solver == "lbfgs":
            opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=int(epochs), history_size=20,
                                    tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

            def closure() -> Tensor:
                opt.zero_grad(set_to_none=True)
                loss = objective(z, labels)
                loss.backward()
                return loss
            opt.step(closure)
        else:
            g = torch.Generator().manual_seed(int(seed))
            opt = torch.optim.SGD([w, b], lr=lr, momentum=0.9)
            n = z.shape[0]
            steps = int(epochs) * math.ceil(n / batch_size)
            step = 0
            for _ in range(int(epochs)):
                order = torch.randperm(n, generator=g).to(z.device)
                for start in range(0, n, batch_size):
                    for group in opt.param_groups:
                        group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / steps))
                    idx = order[start:start + batch_size]
                    opt.zero_grad(set_to_none=True)
                    objective(z[idx], labels[idx]).backward()
                    opt.step()
                    step += 1
    probe.requires_grad_(False)
    return probe


@torch.no_grad()
def probe_top1(probe: nn.Module, features: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy in percent."""
    if labels.numel() == 0:
        return float("nan")
    pred = probe(features.float()).argmax(1)
    return 100.0 * float((pred == labels.to(pred.device)).float().mean())


def _val_count(val_size: float, n: int) -> int:
    k = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if k < 0 or (k > 0 and k >= n):
        raise ConfigError(f"val_size {val_size} leaves no training images for the probe (train has {n})")
    return k


@dataclass
class TransferResult:
    top1: float                          # probe top-1 (%) on the target's test split
    train_top1: float                    # probe top-1 on the features it was fitted on
    val_top1: float                      # best validation top-1 of the weight-decay search (NaN without one)
    weight_decay: float
    num_features: int
    train_images: int
    test_images: int
    val_images: int = 0
    search: dict[str, float] = field(default_factory=dict)  # weight decay -> validation top-1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_probe_eval(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], num_classes: int, *,
                      weight_decays: Sequence[float] | None = None, val_size: float = 0.0, seed: int = 0,
                      solver: str = "lbfgs", epochs: int = 100) -> TransferResult:
    """Fit (and, with ``val_size``, tune) a linear probe on ``train`` features and score it on ``test``."""
    (xtr, ytr), (xte, yte) = train, test
    n = xtr.shape[0]
    k = _val_count(val_size, n)
    decays = list(weight_decays) if weight_decays else ([*WEIGHT_DECAY_GRID] if k else [DEFAULT_WEIGHT_DECAY])
    search: dict[str, float] = {}
    best_wd, best_val = decays[0], float("nan")
    if k and len(decays) > 1:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).to(xtr.device)
        vi, ti = perm[:k], perm[k:]
        for wd in decays:
            p = fit_linear_probe(xtr[ti], ytr[ti], num_classes, weight_decay=wd, solver=solver, epochs=epochs,
                                 seed=seed)
            search[repr(float(wd))] = acc = probe_top1(p, xtr[vi], ytr[vi])
            if not acc <= best_val:  # first, or strictly better
                best_wd, best_val = wd, acc
    probe = fit_linear_probe(xtr, ytr, num_classes, weight_decay=best_wd, solver=solver, epochs=epochs, seed=seed)
    return TransferResult(top1=probe_top1(probe, xte, yte), train_top1=probe_top1(probe, xtr, ytr),
                          val_top1=best_val, weight_decay=float(best_wd), num_features=int(xtr.shape[1]),
                          train_images=int(n), test_images=int(xte.shape[0]), val_images=int(k), search=search)


def transfer_evaluate(model: nn.Module, student_format: InputFormat, target: Any, *, val_size: float = 0.0,
                      weight_decays: Sequence[float] | None = None, solver: str = "lbfgs", epochs: int = 100,
                      seed: int = 0, device: str = "auto", batch_size: int = 256, workers: int = 2) -> TransferResult:
    """Linear-probe top-1 of ``model``'s frozen features on ``target`` (a DataBundle with train and test)."""
    dev = resolve_device(device)
    model = model.to(dev)
    source = InputFormat.of(target)

    def adapt(x: Tensor) -> Tensor:
        return adapt_batch(x, source, student_format)

    adapt(torch.zeros(1, source.channels, *source.size, device=dev))  # refuse impossible conversions up front
    splits = []
    for split in ("train", "test"):
        loader = make_loader(target, split, batch_size, train=False, device=dev if dev.type == "cuda" else "cpu",
                             workers=workers)
        splits.append(extract_features(model, loader, adapt, device=dev))
    return linear_probe_eval(splits[0], splits[1], int(target.num_classes), weight_decays=weight_decays,
                             val_size=val_size, seed=seed, solver=solver, epochs=epochs)


def load_student(path: str | Path, *, student: str | None = None, source_dataset: str | None = None,
                 data_root: str | None = None) -> tuple[nn.Module, InputFormat, dict[str, Any]]:
    """A frozen student and its input format, from a kdzoo run folder or from a weights file.

    A run folder holds ``model.pt`` and ``config.json`` (which names the student
    and the dataset it was trained on). A weights file needs ``student`` (model
    name) and ``source_dataset`` (the dataset it was trained on, which fixes its
    classes, channels, image size and normalization). The source dataset is
    loaded to read that format, so it must be present.
    """
    p = Path(path)
    info: dict[str, Any] = {}
    if p.is_dir():
        weights = p / runfolder.MODEL
        if not weights.is_file():
            raise CheckpointError(f"{p} has no {runfolder.MODEL}: the run has not finished (or is not a kdzoo run folder)")
        cfg = runfolder.read_config(p) or {}
        student = student or cfg.get("student")
        source_dataset = source_dataset or cfg.get("dataset")
        info["run"] = str(p)
        if not student or not source_dataset:
            raise ConfigError(f"{p} has no {runfolder.CONFIG} naming the student and its dataset; pass --student and "
                              f"--source-dataset")
    elif p.is_file():
        weights = p
        if not student or not source_dataset:
            raise ConfigError("a weights file needs --student NAME and --source-dataset NAME (the dataset it was "
                              "trained on); or pass a kdzoo run folder")
    else:
        raise CheckpointError(f"no run folder or weights file at {p}")
    bundle = build_dataset(source_dataset, data_root=data_root)
    fmt = InputFormat.of(bundle)
    model = create(student, num_classes=bundle.num_classes, in_channels=bundle.in_channels,
                   image_size=bundle.image_size)
    load_weights(model, weights, strict=True)
    model.eval().requires_grad_(False)
    info.update(student=student, source_dataset=source_dataset, weights=str(weights))
    return model, fmt, info
