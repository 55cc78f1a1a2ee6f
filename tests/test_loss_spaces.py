"""The search spaces the registered losses declare, read from the registry (a new loss is covered by itself),
and their CLI view ``kdzoo list losses --space``."""
from __future__ import annotations

import io

import pytest
from rich.console import Console

import kdzoo
from conftest import kdzoo_main as main
from kdzoo.cli.spaces import print_spaces
from kdzoo.registry import LOSSES
from kdzoo.space import Choice, Float, Int

# the student alone: tuned over the shared training settings only (the recipe's tune block)
WITHOUT_SPACE = {"ce", "gen-ce-hard"}   # gen-ce-hard: one CE term, its weight a learning-rate scale


def builtin() -> list[str]:
    return [name for name in LOSSES.names() if LOSSES.entry(name).source == "kdzoo"]


def test_every_registered_space_passes_the_check():
    for name in LOSSES.names():
        space = LOSSES.search_space(name)  # raises ConfigError, naming the loss, for a bad declaration
        assert all(isinstance(p, (Float, Int, Choice)) for p in space.values()), name


def test_every_builtin_loss_but_ce_declares_a_space():
    names = builtin()
    assert len(names) >= 20 and "kd+ls" in names and "dkd" in names
    assert [n for n in names if n not in WITHOUT_SPACE and not LOSSES.search_space(n)] == []
    assert all(LOSSES.search_space(n) == {} for n in WITHOUT_SPACE)


def test_each_default_lies_inside_its_range():
    """So the defaults are one point of the search (a study can start from them) and a variant whose defaults
    leave its class's ranges must bring its own space."""
    outside = []
    for name in LOSSES.names():
        for param, value in LOSSES.space_defaults(name).items():
            p = LOSSES.search_space(name)[param]
            inside = value in p.values if isinstance(p, Choice) else p.low <= value <= p.high
            if not inside:
                outside.append(f"{name}.{param}={value} not in {p.describe()}")
    assert outside == []


def test_variants_whose_defaults_leave_the_class_ranges_bring_their_own():
    assert LOSSES.search_space("kd+ls")["kd_weight"] != LOSSES.search_space("kd")["kd_weight"]
    assert LOSSES.search_space("dkd+ls")["beta"].high >= 72 > LOSSES.search_space("dkd")["beta"].high


def test_term_weights_reach_ten_times_below_their_defaults():
    """A new teacher-student pair may need much weaker distillation than the papers' CIFAR-100 weights (several
    methods collapse a BatchNorm-free Fashion-MNIST MLP at them): every searched distillation-term weight goes
    at least an order of magnitude below its default, on a log scale (the CE weight, ce_weight or w_ce, is not one)."""
    short = []
    for name in builtin():
        defaults = LOSSES.space_defaults(name)
        for param, p in LOSSES.search_space(name).items():
            if (param.endswith("weight") or param.startswith("w_")) and param not in ("ce_weight", "w_ce"):
                if not (isinstance(p, Float) and p.log and p.low <= defaults[param] / 10):
                    short.append(f"{name}.{param}: {p.describe()}, default {defaults[param]}")
    assert short == []


def test_a_default_resolved_by_the_loss_is_read_from_the_built_loss():
    assert LOSSES.entry("sdd").hyperparameters()["warmup"] is None
    assert LOSSES.space_defaults("sdd")["warmup"] == 0.0            # sdd's kd base: no warm-up
    assert LOSSES.space_defaults("dkd+ls") == {"temperature": 2.0, "alpha": 9.0, "beta": 72.0, "warmup": 20}


def test_loss_info_gives_the_space_as_plain_data():
    info = kdzoo.loss_info("dkd")
    assert info["space"]["beta"] == {"type": "float", "low": 0.25, "high": 16.0, "log": True}
    assert info["space"]["warmup"] == {"type": "int", "low": 0, "high": 20, "log": False}
    assert set(info["space"]) == set(LOSSES.search_space("dkd"))
    assert kdzoo.loss_info("ce")["space"] == {}
    assert Choice(("l1", "l2")).as_dict() == {"type": "choice", "values": ["l1", "l2"]}


# ------------------------------------------------------------------------------------------------ CLI view
def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if line.count("│") == 5]


def wide_rows() -> list[list[str]]:
    """The table's rows printed wide enough that no cell wraps (the 80-column view may fold long cells when
    other tests have registered losses with long names)."""
    buf = io.StringIO()
    print_spaces(Console(width=400, file=buf))
    return rows(buf.getvalue())


def test_list_space_fits_80_columns_and_names_every_loss(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")      # the terminal's width (engine/terminal.py), 80 columns here
    rc, out, err = run(capsys, "list", "losses", "--space")
    assert rc == 0 and err == ""
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "kdzoo search spaces" in out and "docs/methods.md" in out
    first_column = "".join(r[0] for r in rows(out))
    assert all(name in first_column for name in LOSSES.names())


def test_list_space_shows_each_range_and_default():
    table = wide_rows()
    shown, loss = {}, None
    for name, param, over, default in table:
        loss = name or loss
        if param:
            shown[(loss, param)] = (over, default)
    expected = {(n, k) for n in LOSSES.names() for k in LOSSES.search_space(n)}
    assert set(shown) == expected
    assert shown[("dkd", "beta")] == ("0.25 to 16, log", "8.0")
    assert shown[("dkd", "warmup")] == ("0 to 20, integer", "20")
    assert shown[("sdd", "warmup")][1] == "0.0"
    assert [r for r in table if r[0] == "ce"] == [["ce", "", "none: tuned over the shared training settings only", ""]]


def test_list_space_with_a_plugin_loss(capsys):
    """A plugin's declared space is shown like a built-in one; a plugin loss without one reads 'none'."""
    class _Plug(kdzoo.DistillLoss):
        search_space = {"mode": Choice(("a", "b")), "steps": Int(1, 8, log=True)}

        def __init__(self, mode: str = "b", steps: int = 2) -> None:
            super().__init__()
            self.mode, self.steps = mode, steps

    class _Bare(kdzoo.DistillLoss):
        def __init__(self, weight: float = 1.0) -> None:
            super().__init__()

    kdzoo.register_loss("zz_space_plugin", _Plug)
    kdzoo.register_loss("zz_space_bare", _Bare)
    try:
        rc, _, _ = run(capsys, "list", "losses", "--space")
        table = wide_rows()
    finally:
        LOSSES._entries.pop("zz_space_plugin")
        LOSSES._entries.pop("zz_space_bare")
    assert rc == 0
    i = [r[0] for r in table].index("zz_space_plugin")
    assert table[i][1:] == ["mode", "a | b", "b"] and table[i + 1][1:] == ["steps", "1 to 8, integer, log", "2"]
    bare = [r for r in table if r[0] == "zz_space_bare"]
    assert bare[0][1] == "" and bare[0][2].startswith("none")


def test_list_space_refuses_a_bad_declaration_in_one_line(capsys):
    class _Typo(kdzoo.DistillLoss):
        search_space = {"temprature": Float(1.0, 4.0)}

        def __init__(self, temperature: float = 2.0) -> None:
            super().__init__()

    kdzoo.register_loss("zz_space_typo", _Typo)
    try:
        rc, out, err = run(capsys, "list", "losses", "--space")
    finally:
        LOSSES._entries.pop("zz_space_typo")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "loss 'zz_space_typo': search space names 'temprature'" in err and "did you mean 'temperature'" in err


@pytest.mark.parametrize("what", ["models", "datasets"])
def test_list_space_is_for_losses_only(capsys, what):
    rc, out, err = run(capsys, "list", what, "--space")
    assert rc == 2 and out == ""
    assert err.strip() == f"kdzoo: error: --space lists the search spaces of losses, not of {what}"
