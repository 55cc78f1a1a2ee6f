"""jsd: distillation with the Jensen-Shannon divergence instead of KL (an example plugin).

    loss = ce_weight * CE(s, y) + jsd_weight * T^2 * JSD(softmax_T(t), softmax_T(s))
    JSD(p, q) = 0.5 KL(p || m) + 0.5 KL(q || m),  m = (p + q) / 2
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import kdzoo
from kdzoo.losses import check_logits
from kdzoo.space import Float


@kdzoo.register_loss("jsd")
class JSD(kdzoo.DistillLoss):
    requires = "probs"  # only softmax_T(t) is used, which log-probabilities give exactly
    paper = "example plugin: Jensen-Shannon distillation"
    # what `kdzoo tune` searches (`kdzoo list losses --space` shows it); without it only the shared
    # training settings (learning rate, ...) are tuned
    search_space = {"temperature": Float(1.0, 8.0, log=True), "jsd_weight": Float(0.05, 5.0, log=True)}

    def __init__(self, temperature: float = 4.0, ce_weight: float = 1.0, jsd_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature, self.ce_weight, self.jsd_weight = temperature, ce_weight, jsd_weight

    def forward(self, student_logits, teacher_logits, target, *, epoch=1, **batch):
        s, t = check_logits(student_logits, teacher_logits, target)
        p = torch.softmax(t / self.temperature, dim=1)
        q = torch.softmax(s / self.temperature, dim=1)
        m = (0.5 * (p + q)).clamp_min(1e-12)
        jsd = 0.5 * (p * (p.clamp_min(1e-12) / m).log()).sum(1) + 0.5 * (q * (q.clamp_min(1e-12) / m).log()).sum(1)
        return {"ce": self.ce_weight * F.cross_entropy(s, target),
                "jsd": self.jsd_weight * self.temperature ** 2 * jsd.mean()}
