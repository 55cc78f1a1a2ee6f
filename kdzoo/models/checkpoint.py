"""Load model weights from a file (published teacher checkpoints, kdzoo runs, timm/torchvision downloads).

Files are read with ``torch.load(..., weights_only=True)``: tensors and plain
containers only, never arbitrary pickled code.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import Tensor, nn

from ..errors import CheckpointError

# containers that training scripts wrap a state dict in (RepDistiller / mdistiller: {"model": sd, "epoch": ...})
STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")
# prefixes added by DataParallel / DistributedDataParallel ("module.") and torch.compile ("_orig_mod.")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read ``path`` and return a flat ``{name: tensor}`` dict with wrapper prefixes removed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated files, zip errors, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path} (tensors-only loading): {first}") from exc
    for key in STATE_DICT_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        kind = f"keys {sorted(map(str, obj))[:5]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"checkpoint {path} does not hold a state dict (found {kind}); expected a dict of tensors, "
                              f"optionally under one of {', '.join(repr(k) for k in STATE_DICT_KEYS)}")
    return {strip_prefixes(str(k)): v for k, v in obj.items()}


def strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _names(keys: Iterable[str], limit: int = 4) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... (+{len(keys) - limit} more)" if len(keys) > limit else shown


def compare(model: nn.Module, state_dict: Mapping[str, Tensor]) -> dict[str, list]:
    """Keys of ``model`` missing from ``state_dict``, keys it does not have, and shape mismatches."""
    own = model.state_dict()
    # BatchNorm's step counter is bookkeeping; checkpoints from PyTorch < 0.4.1 lack it
    missing = [k for k in own if k not in state_dict and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [(k, tuple(state_dict[k].shape), tuple(own[k].shape)) for k in own
                  if k in state_dict and state_dict[k].shape != own[k].shape]
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def describe(report: Mapping[str, list]) -> str:
    """One-line summary of a ``compare`` report."""
    parts = []
    if report["missing"]:
        parts.append(f"{len(report['missing'])} missing keys ({_names(report['missing'])})")
    if report["unexpected"]:
        parts.append(f"{len(report['unexpected'])} unexpected keys ({_names(report['unexpected'])})")
    if report["mismatched"]:
        shapes = [f"{k} {list(a)} in file vs {list(b)} in model" for k, a, b in report["mismatched"]]
        parts.append(f"{len(shapes)} shape mismatches ({_names(shapes, 3)})")
    return "; ".join(parts)


def _target(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """The module to load into: adapters (``ExternalModel``) take checkpoints of the model they wrap."""
    inner = getattr(model, "wrapped_model", None)
    if isinstance(inner, nn.Module) and not any(k.startswith("net.") for k in state_dict):
        return inner
    return model


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> dict[str, Any]:
    """Load the weights in ``path`` into ``model`` and return ``{"missing", "unexpected", "mismatched"}``.

    ``path`` may hold a raw state dict or one under ``"model"`` / ``"state_dict"``
    / ``"model_state_dict"`` (the published RepDistiller / mdistiller CIFAR teachers use ``"model"``);
    ``module.`` prefixes from (Distributed)DataParallel and ``_orig_mod.`` from
    torch.compile are removed. This is kdzoo's one loader: teachers, students and
    transfer evaluation all load through it. With
    ``strict=True`` any missing, unexpected or differently shaped key raises
    ``CheckpointError`` naming the first few; with ``strict=False`` the keys that
    fit are loaded, the rest are left as they are and listed in the returned report.
    """
    state_dict = read_state_dict(path)
    target = _target(model, state_dict)
    report = compare(target, state_dict)
    if strict and (report["missing"] or report["unexpected"] or report["mismatched"]):
        raise CheckpointError(f"checkpoint {path} does not fit the model ({type(target).__name__}): "
                              f"{describe(report)}")
    bad = {k for k, _, _ in report["mismatched"]}
    fitting = {k: v for k, v in state_dict.items() if k not in bad and k not in report["unexpected"]}
    try:
        target.load_state_dict(fitting, strict=False)
    except RuntimeError as exc:  # e.g. a custom _load_from_state_dict rejecting a value
        raise CheckpointError(f"checkpoint {path} does not fit the model ({type(target).__name__}): "
                              f"{str(exc).strip().splitlines()[0]}") from exc
    return report
