"""Edge cases shared by wsld, nkd, ttm, wttm and abkd: extreme logits, tiny batches and classes, bad inputs."""
from __future__ import annotations

import pytest
import torch

import kdzoo
from kdzoo import ConfigError

NAMES = ["wsld", "nkd", "ttm", "wttm", "abkd"]


@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits_give_finite_values_and_gradients(name):
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(8, 10, generator=g) * 1e4).requires_grad_(True)
    t = torch.randn(8, 10, generator=g) * 1e4
    out = kdzoo.build_loss(name)(s, t, torch.arange(8))
    (grad,) = torch.autograd.grad(sum(out.values()), s)
    assert all(torch.isfinite(v) for v in out.values()) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n, c", [(1, 10), (5, 2)])
def test_batch_of_one_and_two_classes(name, n, c):
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(n, c, generator=g), torch.randn(n, c, generator=g)
    out = kdzoo.build_loss(name)(s, t, torch.randint(0, c, (n,), generator=g))
    assert set(out) > {"ce"} and all(torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_one_line_config_errors(name):
    loss = kdzoo.build_loss(name)
    s = torch.zeros(4, 5)
    cases = [(s, torch.zeros(4, 6), torch.zeros(4, dtype=torch.long), "differ in shape"),
             (s, s, torch.tensor([0, 1, 2, 5]), "labels must lie in"),
             (s, s, torch.zeros(4), "integer class indices"),
             (torch.zeros(0, 5), torch.zeros(0, 5), torch.zeros(0, dtype=torch.long), "empty batch")]
    for student, teacher, target, match in cases:
        with pytest.raises(ConfigError, match=match) as err:
            loss(student, teacher, target)
        assert "\n" not in str(err.value)
