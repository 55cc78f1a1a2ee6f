"""The report's interactive figures, drawn with Bokeh: learning curves and top-1 against teacher queries.

Bokeh (an optional dependency, the 'report' extra) is imported here only. Each method's glyphs
are separate renderers whose ids a ``Toggle`` lists, so report.js can hide and show one method;
hovering a point shows the method, the x value (epoch, queries) and the value. Data go in as
plain lists (not numpy arrays), so the page holds them as readable JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .sources import CURVE_GROUP, CURVE_LOSS, CURVE_X, CURVE_Y, QUERY_GROUP, QUERY_STUDY, QUERY_X, QUERY_Y

TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
HEIGHT = 300


@dataclass
class Toggle:
    """One method's switch: its name, colour and the renderers it hides and shows."""
    label: str
    color: str
    renderers: list[str] = field(default_factory=list)


@dataclass
class Figure:
    key: str            # the element the figure is placed in (an html id)
    title: str
    model: Any          # the Bokeh layout
    toggles: list[Toggle]


def _palette(n: int) -> list[str]:
    from bokeh.palettes import Category10, Category20
    if n <= 10:
        return list(Category10[10])[:max(n, 3)]
    return [Category20[20][i % 20] for i in range(n)]


def _dash(i: int) -> str:
    return "solid" if i < 20 else "dashed"   # past twenty colours, the second round is dashed


def _figure(title: str, x_label: str, y_label: str, **kw: Any) -> Any:
    from bokeh.plotting import figure
    f = figure(title=title, height=HEIGHT, sizing_mode="stretch_width", tools=TOOLS,
               toolbar_location="right", x_axis_label=x_label, y_axis_label=y_label, **kw)
    f.toolbar.autohide = True
    return f


def _hover(fig: Any, renderers: list[Any], tooltips: list[tuple[str, str]]) -> None:
    from bokeh.models import HoverTool
    fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltips))


def _log_ticks(fig: Any, values: pd.Series) -> None:
    """1-2-5 ticks on a log axis: Bokeh's LogTicker falls back to linear ticks (5, 10, 15) on a range of
    one or two decades, which leaves the small losses unlabelled."""
    from bokeh.models import FixedTicker

    low, high = float(values.min()), float(values.max())
    if not 0 < low <= high:
        return
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    fig.yaxis.ticker = FixedTicker(ticks=[t for t in ticks if low / 2.5 <= t <= high * 2.5])


def _name(*parts: Any) -> str:
    return "|".join(str(p) for p in parts)


def curves(df: pd.DataFrame, teacher: str, student: str, key: str, title: str) -> Figure | None:
    """Test top-1 per epoch (mean over seeds, band min..max) above the training loss (mean, log scale)."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource

    g = df[(df.teacher == teacher) & (df.student == student)]
    if g.empty:
        return None
    methods = list(dict.fromkeys(zip(*(g[c] for c in CURVE_GROUP))))
    colors = _palette(len(methods))
    top = _figure(f"{title}: test top-1", "epoch", "test top-1 (%)")
    positive = bool((g[CURVE_LOSS].dropna() > 0).all())
    bottom = _figure(f"{title}: training loss (all terms)", "epoch", "train loss (mean over seeds)",
                     x_range=top.x_range, y_axis_type="log" if positive else "linear")
    if positive:
        _log_ticks(bottom, g[CURVE_LOSS].dropna())
    toggles, points, loss_points = [], [], []
    for i, group in enumerate(methods):
        m = g[(g[list(CURVE_GROUP)] == pd.Series(group, index=list(CURVE_GROUP))).all(axis=1)]
        by = m.groupby(CURVE_X)
        acc = by[CURVE_Y].agg(["mean", "min", "max"]).dropna()
        loss = by[CURVE_LOSS].mean().dropna()
        label, access = group
        levels = {a for lab, a in methods if lab == label}
        shown = str(label) if len(levels) < 2 else f"{label} ({access})"
        seeds = int(m.seed.nunique()) if "seed" in m else 0
        src = ColumnDataSource({"epoch": [int(e) for e in acc.index], "y": [float(v) for v in acc["mean"]],
                                "lo": [float(v) for v in acc["min"]], "hi": [float(v) for v in acc["max"]],
                                "method": [shown] * len(acc), "seeds": [seeds] * len(acc)},
                               name=_name("curve", teacher, student, label, access))
        lsrc = ColumnDataSource({"epoch": [int(e) for e in loss.index], "y": [float(v) for v in loss],
                                 "method": [shown] * len(loss)}, name=_name("loss", teacher, student, label, access))
        color, dash = colors[i], _dash(i)
        band = top.varea(x="epoch", y1="lo", y2="hi", source=src, fill_color=color, fill_alpha=0.12)
        line = top.line("epoch", "y", source=src, color=color, line_width=1.6, line_dash=dash)
        dots = top.scatter("epoch", "y", source=src, color=color, size=5)
        lline = bottom.line("epoch", "y", source=lsrc, color=color, line_width=1.4, line_dash=dash)
        ldots = bottom.scatter("epoch", "y", source=lsrc, color=color, size=4)
        points.append(dots)
        loss_points.append(ldots)
        toggles.append(Toggle(shown, color, [r.id for r in (band, line, dots, lline, ldots)]))
    _hover(top, points, [("method", "@method"), ("epoch", "@epoch"), ("test top-1", "@y{0.00} %"),
                         ("seeds min–max", "@lo{0.00}–@hi{0.00}"), ("seeds", "@seeds")])
    _hover(bottom, loss_points, [("method", "@method"), ("epoch", "@epoch"), ("train loss", "@y{0.0000}")])
    return Figure(key, title, column(top, bottom, sizing_mode="stretch_width"), toggles)


def queries(df: pd.DataFrame, key: str, title: str) -> Figure | None:
    """Top-1 against teacher queries per method (mean over seeds, whiskers min..max), log-scaled queries."""
    from bokeh.models import ColumnDataSource

    d = df
    if "study" in d:
        d = d[d.study == QUERY_STUDY]
    if "status" in d:
        d = d[d.status == "finished"]
    d = d[d[QUERY_X] > 0]
    if d.empty:
        return None
    # a generator method trained on a labelled pool and the same method querying every step are two
    # series: joining them would draw one line through two different query regimes
    pooled = pd.to_numeric(d["pool"], errors="coerce").fillna(0) > 0 if "pool" in d else [False] * len(d)
    d = d.assign(label=[f"{label}, pool" if p else str(label) for label, p in zip(d.label, pooled)])
    methods = list(dict.fromkeys(zip(*(d[c] for c in QUERY_GROUP))))
    colors = _palette(len(methods))
    fig = _figure(title, "teacher queries (images sent to the teacher, log scale)", "test top-1 (%)",
                  x_axis_type="log")
    toggles, points = [], []
    for i, (label, access) in enumerate(methods):
        m = d[(d.label == label) & (d.access == access)]
        agg = m.groupby(QUERY_X)[QUERY_Y].agg(["mean", "min", "max", "count"]).sort_index()
        src = ColumnDataSource({"queries": [int(q) for q in agg.index], "y": [float(v) for v in agg["mean"]],
                                "lo": [float(v) for v in agg["min"]], "hi": [float(v) for v in agg["max"]],
                                "seeds": [int(n) for n in agg["count"]], "method": [str(label)] * len(agg),
                                "access": [str(access)] * len(agg)}, name=_name("queries", label, access))
        color = colors[i]
        line = fig.line("queries", "y", source=src, color=color, line_width=1.6, line_dash=_dash(i))
        whiskers = fig.segment("queries", "lo", "queries", "hi", source=src, color=color, line_width=1.2)
        dots = fig.scatter("queries", "y", source=src, color=color, size=7)
        points.append(dots)
        toggles.append(Toggle(f"{label} ({access})", color, [r.id for r in (line, whiskers, dots)]))
    _hover(fig, points, [("method", "@method (@access)"), ("teacher queries", "@queries{0,0}"),
                         ("test top-1", "@y{0.00} %"), ("seeds min–max", "@lo{0.00}–@hi{0.00}"), ("seeds", "@seeds")])
    return Figure(key, title, fig, toggles)


def embed(figures: list[Figure]) -> tuple[str, str, dict[str, str]]:
    """(BokehJS, inline; the script that draws the figures; {figure key: its placeholder div})."""
    from bokeh.embed import components
    from bokeh.embed.bundle import bundle_for_objs_and_resources
    from bokeh.resources import Resources

    if not figures:
        return "", "", {}
    models = [f.model for f in figures]
    script, divs = components(models)
    # inline BokehJS; it logs warnings only (its default, 'info', writes two lines to every console)
    bundle = bundle_for_objs_and_resources(models, Resources(mode="inline", log_level="warn"))
    if bundle.js_files or bundle.css_files:   # a resource by URL would break the page offline
        raise RuntimeError("Bokeh asked for external resources; the report must be self-contained")
    return bundle.scripts(), script, {f.key: div for f, div in zip(figures, divs)}


__all__ = ["Figure", "Toggle", "curves", "embed", "queries"]
