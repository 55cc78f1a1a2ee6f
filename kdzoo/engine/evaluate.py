"""Top-1 / top-5 accuracy and cross-entropy of a model on a loader."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any) -> dict[str, float]:
    """Accuracies in percent; sums stay on the device until the end (one host sync)."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = loss = None
    n = 0
    for batch in loader:
        x, y = batch[0], batch[1]
        logits = model(x).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == y[:, None]
        c1, c5 = hit[:, 0].sum(), hit.any(dim=1).sum()
        l = F.cross_entropy(logits, y, reduction="sum")
        correct1 = c1 if correct1 is None else correct1 + c1
        correct5 = c5 if correct5 is None else correct5 + c5
        loss = l if loss is None else loss + l
        n += y.shape[0]
    model.train(was_training)
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan")}
    c1, c5, total = torch.stack([correct1.double(), correct5.double(), loss.double()]).tolist()  # the one sync
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": total / n}
