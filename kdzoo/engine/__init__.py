"""The shared trainer, evaluation and checkpoint I/O."""
from .checkpoint import atomic_write_json, atomic_write_text, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate import evaluate
from .device import resolve_device
from .prepare import PrepareContext
from .member import Member, RunResult
from .trainer import Trainer, learning_rate

__all__ = ["Member", "PrepareContext", "RunResult", "TrainConfig", "Trainer", "atomic_write_json",
           "atomic_write_text", "evaluate", "learning_rate", "load_checkpoint", "resolve_device", "save_checkpoint"]
