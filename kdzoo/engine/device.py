"""Where and how the engine computes: the device, the autocast dtype, and the random generators
whose state each member of a cohort keeps (so runs trained together equal runs trained alone)."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the GPU when there is one, else the CPU; a CUDA device without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but no CUDA GPU is available; use --device cpu")
    return device


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``--amp`` on ``device``; None: full precision (always on a CPU)."""
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return None


def rng_generators(device: torch.device) -> list[torch.Generator]:
    """The global generators a member's step may draw from (CPU, and the GPU's when training on one)."""
    gens = [torch.default_generator]
    if device.type == "cuda":
        torch.cuda.init()  # default_generators is filled on CUDA's (lazy) initialization
        gens.append(torch.cuda.default_generators[device.index if device.index is not None
                                                  else torch.cuda.current_device()])
    return gens


def get_rng(gens: list[torch.Generator]) -> dict[str, Any]:
    state = {"cpu": gens[0].get_state()}
    if len(gens) > 1:
        state["cuda"] = gens[1].get_state()
    return state


def set_rng(state: dict[str, Any], gens: list[torch.Generator]) -> None:
    gens[0].set_state(state["cpu"])
    if len(gens) > 1 and "cuda" in state:
        gens[1].set_state(state["cuda"])


__all__ = ["amp_dtype", "get_rng", "resolve_device", "rng_generators", "set_rng"]
