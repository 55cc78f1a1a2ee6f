"""Search-space declarations (kdzoo.space): what a bad one is refused with, and what a good one gives."""
from __future__ import annotations

import pytest

import kdzoo
from kdzoo import register_loss
from kdzoo.errors import ConfigError
from kdzoo.losses.base import DistillLoss, check_positive
from kdzoo.registry import LOSSES
from kdzoo.space import Choice, Float, Int

from conftest import kdzoo_main as main


class _Toy(DistillLoss):
    search_space = {"temperature": Float(0.5, 8.0, log=True), "steps": Int(1, 4), "mode": Choice(("a", "b"))}

    def __init__(self, temperature: float = 4.0, steps: int = 2, mode: str = "a") -> None:
        super().__init__()
        check_positive("toy", temperature=temperature)
        if mode not in ("a", "b"):
            raise ConfigError(f"toy: mode must be a or b, got {mode!r}")
        self.temperature, self.steps, self.mode = temperature, steps, mode


@pytest.fixture
def toy():
    names = []

    def register(name, **kw):
        register_loss(name, _Toy, **kw)
        names.append(name)
        return name
    yield register
    for name in names:
        LOSSES._entries.pop(name, None)


def test_declared_space_is_returned(toy):
    assert LOSSES.search_space(toy("space_toy")) == _Toy.search_space


def test_variant_space_replaces_the_class_space(toy):
    name = toy("space_toy_variant", defaults={"temperature": 2.0}, space={"temperature": Float(1.0, 3.0)})
    assert LOSSES.search_space(name) == {"temperature": Float(1.0, 3.0)}


def test_unknown_parameter_is_refused_with_the_list(toy):
    name = toy("space_toy_typo", space={"temprature": Float(1.0, 3.0)})
    with pytest.raises(ConfigError) as err:
        LOSSES.search_space(name)
    msg = str(err.value)
    assert "'temprature'" in msg and "did you mean 'temperature'" in msg and "temperature, steps, mode" in msg
    assert "\n" not in msg


def test_range_outside_legal_values_is_refused(toy):
    name = toy("space_toy_negative", space={"temperature": Float(-1.0, 3.0)})
    with pytest.raises(ConfigError, match=r"temperature=.*includes -1.0.*must be > 0"):
        LOSSES.search_space(name)
    bad_choice = toy("space_toy_choice", space={"mode": Choice(("a", "c"))})
    with pytest.raises(ConfigError, match="includes 'c'"):
        LOSSES.search_space(bad_choice)


@pytest.mark.parametrize("make, match", [
    (lambda: Float(3.0, 1.0), "low must be below high"),
    (lambda: Float(0.0, 1.0, log=True), "log-scale range needs low > 0"),
    (lambda: Float(1.0, float("inf")), "finite"),
    (lambda: Int(1.5, 4), "integers"),
    (lambda: Choice(("only",)), "at least two values"),
    (lambda: Choice(((1, 2), (1, 2, 4))), "numbers, strings, flags or None"),   # a study could not store it
])
def test_malformed_ranges_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_a_loss_without_a_space_has_none():
    assert LOSSES.search_space("ce") == {}


def test_a_bad_space_is_reported_for_its_loss_and_refused_where_it_is_used(toy, capsys, monkeypatch):
    """One plugin's bad declaration does not stop `kdzoo list losses` or loss_info (issue 28: a broken plugin
    never disables the CLI): its row is marked and one line says why; --space and tuning still refuse it."""
    name = toy("space_toy_listed", space={"temprature": Float(1.0, 3.0)})
    refused = (f"loss '{name}': search space names 'temprature', which is not one of its hyperparameters; did you "
               f"mean 'temperature'? (it takes: temperature, steps, mode)")
    with pytest.raises(ConfigError) as err:           # what tuning the loss reads
        LOSSES.search_space(name)
    assert str(err.value) == refused
    info = kdzoo.loss_info(name)
    assert info["space"] is None and info["space_error"] == refused and info["defaults"]["temperature"] == 4.0
    assert kdzoo.loss_info("dkd")["space_error"] == "" and kdzoo.loss_info("dkd")["space"]
    monkeypatch.setenv("COLUMNS", "250")               # one line per row, whatever else the session registered
    capsys.readouterr()
    assert main(["list", "losses"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out if line[:1].strip()}
    assert rows[name].rstrip().endswith("mode=a; search space refused") and {"kd", "dkd", "ce"} <= set(rows)
    assert "refused" not in rows["kd"] and [line for line in out if refused in line] == [
        f"search space refused: {refused}"]
    assert main(["list", "losses", "--space"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"kdzoo: error: {refused}"]
