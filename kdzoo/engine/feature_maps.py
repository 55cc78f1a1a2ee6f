"""Feature maps for losses that declare ``needs = {"feature_maps"}`` (e.g. SDD).

Such a loss receives, besides the logits, ``student_feature_map`` and
``teacher_feature_map`` (N, C, H, W: the final maps before global pooling) and
``student_classifier`` / ``teacher_classifier`` (the heads mapping pooled
(N, C) features to logits). The trainer reaches this module through three
calls and never learns which method asked:

- ``check_members``: the models expose the capability (one-line ConfigError
  naming the model otherwise); the access level is checked like any other;
- ``student_module``: a member that needs maps trains through a wrapper whose
  forward returns (logits, map) from ONE pass, logits = classifier(mean over
  H, W of the map); the wrapper is what DDP / torch.compile wrap, so gradient
  averaging still works. Members without the need keep their plain model and
  train bit-identically to before;
- ``teacher_inputs`` / ``student_inputs``: per batch, the teacher's map is
  obtained once for the whole cohort, and each member that needs it gets it
  along with its own map.

At access ``features`` a teacher query answers with logits and map from one
forward, so the map of a batch just queried costs nothing more. When the
logits come from the response cache table (fixed inputs), the map is computed
live: those images are sent again, counted as queries, charged to the
teacher's budget and to the members that asked.
"""
from __future__ import annotations

from typing import Any, Callable, ContextManager

from torch import Tensor, nn

from ..losses.base import needs_of
from ..teachers import Teacher, model_classifier, model_feature_map

FEATURE_MAPS = "feature_maps"


def wants_maps(loss: nn.Module) -> bool:
    """Whether a built loss declared that it needs feature maps (read from the instance)."""
    return FEATURE_MAPS in needs_of(loss)


class MapAndLogits(nn.Module):
    """(logits, feature map) from one forward of ``model``; holds no state of its own."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        fmap = self.model.forward_feature_map(x)
        return self.model.classifier(fmap.mean(dim=(2, 3))), fmap


def check_members(members: list[Any], teacher: Teacher | None) -> None:
    """ConfigError (one line, naming the model) when a member needs maps its student or teacher lacks."""
    needing = [m for m in members if wants_maps(m.loss)]
    for m in needing:
        model_feature_map(m.student)
    if needing and teacher is not None:
        model_feature_map(teacher.model)


def student_module(student: nn.Module, loss: nn.Module) -> nn.Module:
    """What the member's forward runs: the student itself, or the map-returning wrapper when its loss needs maps."""
    return MapAndLogits(student) if wants_maps(loss) else student


def teacher_inputs(teacher: Teacher | None, members: list[Any], x: Tensor, epoch: int,
                   amp_ctx: Callable[[], ContextManager]) -> dict[str, Any]:
    """The teacher's map and classifier for this batch, once for the cohort; {} when no live member needs them."""
    askers = [m for m in members if m.active and m.done_epochs < epoch and wants_maps(m.loss)]
    if teacher is None or not askers:
        return {}
    before = teacher.queries
    with amp_ctx():
        fmap = teacher.feature_map(x)
    for m in askers:
        m.queries += teacher.queries - before   # 0 when the map came with this batch's logits
    return {"teacher_feature_map": fmap, "teacher_classifier": teacher.classifier}


def student_inputs(out: Any, member: Any, teacher_extra: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    """Split a member's forward output into logits and the keyword arguments its loss gets besides them."""
    if not wants_maps(member.loss):
        return out, {}
    logits, fmap = out
    return logits, {"student_feature_map": fmap, "student_classifier": model_classifier(member.student),
                    **teacher_extra}
