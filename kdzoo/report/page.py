"""``report.html``: one self-contained page per benchmark output folder.

Sections, each present when its files are: the leaderboard of every pair (sortable, filterable
tables), the comparison with the committed reference, learning curves with a switch per method,
the black-box top-1 against teacher queries, a tuned recipe's figures and tables, every run,
and the provenance. The page needs no network: BokehJS, the styles and the table script are
inline, figures of other tools are embedded as data URIs. It is written the same way for the
same files (Bokeh's random element ids are replaced by numbered ones), so a committed report
changes only when its results do.
"""
from __future__ import annotations

import base64
import html
import re
import uuid
from importlib import resources
from pathlib import Path

import pandas as pd

from .. import __version__
from ..bench.report.leaderboard import METRIC_NAMES
from ..engine.checkpoint import atomic_write_text
from . import figures, tables
from .sources import (LEADERBOARD, PROVENANCE_COLUMNS, RUNS, RUNS_SHOWN_ELSEWHERE, SHOWN_ELSEWHERE, Sources,
                      columns, finite)

REPORT = "report.html"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECTIONS = (("leaderboard", "Leaderboard"), ("reference", "Against the reference"), ("curves", "Learning curves"),
            ("queries", "Teacher queries"), ("tuning", "Tuning"), ("runs", "Runs"), ("provenance", "Provenance"))


def _asset(name: str) -> str:
    return resources.files("kdzoo.report").joinpath("assets", name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text))


def _pair_title(src: Sources, teacher: str, student: str) -> str:
    models = src.runs[src.runs.teacher == teacher].teacher_model.dropna()
    model = str(models.iloc[0]) if len(models) else teacher
    return f"{model} → {student}" + (f" (teacher {teacher})" if model != teacher else "")


def _header(src: Sources) -> str:
    runs = src.runs.drop_duplicates("config_hash") if "config_hash" in src.runs else src.runs
    counts = runs.status.value_counts() if "status" in runs else pd.Series(dtype=int)
    students = src.runs[src.runs.get("role", pd.Series("student", index=src.runs.index)) == "student"]
    seeds = sorted({int(s) for s in students.seed.dropna()}) if "seed" in students else []
    metric = METRIC_NAMES.get(src.metric, src.metric)
    meta = (f"dataset <code>{_e(src.plan.get('dataset', ''))}</code> · ranked by {_e(metric)} · seeds "
            f"{_e(', '.join(map(str, seeds)) or '—')} · {len(runs)} runs: "
            + _e(", ".join(f"{n} {s}" for s, n in counts.items())))
    desc = f"<p>{_e(src.plan['description'])}</p>" if src.plan.get("description") else ""
    return f"<header><h1>kdzoo report: {_e(src.name)}</h1>{desc}<p class=\"meta\">{meta}</p>"


def _leaderboard(src: Sources) -> str:
    cols = columns(LEADERBOARD, src.summary, SHOWN_ELSEWHERE)
    parts = ['<p class="note">One table per teacher → student pair, from <code>summary.csv</code> (the numbers '
             "of <code>leaderboard.md</code>). Click a header to sort, type in the filter to keep matching rows; "
             "hover a header for what it means.</p>"]
    if "n_kept" in src.summary:   # the statistics of kdzoo.stats
        parts.append('<p class="note">Mean ± std over the seeds kept: a collapsed seed (diverged, or at chance '
                     "level) is listed under <i>seeds</i> with its value, not averaged, and left out of the tests. "
                     "All methods of a pair form one family: every Δ has a simultaneous 95% interval (they hold "
                     "all at once), every verdict (<i>better</i>, <i>worse</i>, <i>tied</i>) and <i>tied with</i> "
                     "is read off them, and <i>rank</i> gives the ranks the data allow. See "
                     "docs/statistics.md in kdzoo.</p>")
    elif len(src.summary):   # a summary.csv written before them: its numbers, said to be what they are
        parts.append('<p class="note">This <code>summary.csv</code> was written before kdzoo\'s current '
                     "statistics (docs/statistics.md): its intervals hold one pair at a time, not all at once, "
                     "collapsed seeds are averaged in, and a rank is shown only where a method is separated. "
                     "<code>kdzoo leaderboard OUT</code> (or <code>--from-rows</code>) rewrites it.</p>")
    for teacher, student in src.pairs():
        g = src.summary[(src.summary.teacher == teacher) & (src.summary.student == student)]
        if "rank" in g:
            g = g.sort_values(["rank"], na_position="last", kind="stable")
        t1 = next((float(v) for v in g.get("teacher_top1", []) if finite(v)), None)
        teacher_line = f"Teacher top-1: {t1:.2f}%." if t1 is not None else ""
        parts.append(f"<h3>{_e(_pair_title(src, teacher, student))}</h3><p class=\"muted\">{teacher_line}</p>"
                     '<div class="scroll">' + tables.table(cols, g, marked=f"{src.metric}_mean",
                                                           attrs=f' data-pair="{_e(teacher)}|{_e(student)}"')
                     + "</div>")
    sources = sorted({str(s) for s in src.summary.get("published_source", []) if isinstance(s, str) and s})
    if sources:
        parts.append(f"<p class=\"note\">Published numbers: {_e('; '.join(sources))}.</p>")
    return "".join(parts)


def _reference(src: Sources) -> str:
    ref = src.reference or {}
    if "error" in ref:
        return f"<p>No comparison with <code>{_e(ref['path'])}</code>: {_e(ref['error'])}</p>"
    return (f"<p class=\"note\"><code>kdzoo compare {_e(ref['path'])} {_e(src.folder)}</code> "
            f"({_e(ref['metric'])}): {_e(ref['line'])}</p><div class=\"scroll\">"
            + tables.plain(ref["header"], ref["rows"], verdict=ref["header"].index("verdict")
                           if "verdict" in ref["header"] else None) + "</div>")


def _toggles(fig: figures.Figure) -> str:
    group = f"toggles-{fig.key}"
    boxes = "".join(f'<label><input type="checkbox" class="method-toggle" checked data-renderers="'
                    f'{_e(" ".join(t.renderers))}"><span class="swatch" style="background:{_e(t.color)}"></span>'
                    f"{_e(t.label)}</label>" for t in fig.toggles)
    buttons = "".join(f'<button type="button" data-toggle-all="{v}" data-group="{group}">{v2}</button>'
                      for v, v2 in (("on", "all"), ("off", "none")))
    return f'<div class="toggles" id="{group}">{buttons}{boxes}</div>'


def _figures(figs: list[figures.Figure], divs: dict[str, str], note: str) -> str:
    parts = [f'<p class="note">{note}</p>']
    for f in figs:
        parts.append(f'<h3>{_e(f.title)}</h3>{_toggles(f)}<div class="figure" id="{f.key}">{divs[f.key]}</div>')
    return "".join(parts)


def _tuning(src: Sources) -> str:
    parts = []
    for path in src.tuning_figures:
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f'<h3>{_e(path.name)}</h3><img class="static" alt="{_e(path.name)}" '
                     f'src="data:image/png;base64,{data}">')
    for path in src.tuning_tables:
        df = pd.read_csv(path)
        parts.append(f"<h3>{_e(path.name)}</h3><div class=\"scroll\">"
                     + tables.table(columns((), df, frozenset()), df) + "</div>")
    return "".join(parts)


def _runs(src: Sources) -> str:
    cols = columns(RUNS, src.runs, RUNS_SHOWN_ELSEWHERE)
    return (f"<details><summary>All {len(src.runs)} rows of <code>leaderboard.csv</code> (one per run and "
            f"leaderboard row; a run shared by several pairs appears once per pair)</summary>"
            '<div class="scroll">' + tables.table(cols, src.runs, classes="sortable filterable runs")
            + "</div></details>")


def _provenance(src: Sources) -> str:
    rows = [[c, ", ".join(sorted({str(v) for v in src.runs[c].dropna() if str(v)}))]
            for c in PROVENANCE_COLUMNS if c in src.runs]
    parts = ['<p class="note">Recorded with every run (<code>leaderboard.csv</code>); the exact values of '
             "this machine and software make bit-identical reruns, elsewhere a rerun is a new sample.</p>",
             tables.plain(["recorded", "values"], rows, classes="provenance")]
    if src.provenance_md:
        parts.append(f'<h3>PROVENANCE.md</h3><pre class="provenance">{_e(src.provenance_md)}</pre>')
    return "".join(parts)


def render(src: Sources) -> str:
    """The whole page as one string."""
    figs: list[figures.Figure] = []
    if src.curves is not None and len(src.curves):
        for i, (teacher, student) in enumerate(dict.fromkeys(zip(src.curves.teacher, src.curves.student))):
            f = figures.curves(src.curves, teacher, student, f"curves-{i}", _pair_title(src, teacher, student))
            if f is not None:
                figs.append(f)
    curve_figs = list(figs)
    if src.queries is not None:
        q = figures.queries(src.queries, "queries-0", f"{src.name}: test top-1 against teacher queries")
        if q is not None:
            figs.append(q)
    bokeh_js, script, divs = figures.embed(figs)
    script, *numbered = _numbered_ids([script, *divs.values()])
    divs = dict(zip(divs, numbered))
    body: dict[str, str] = {"leaderboard": _leaderboard(src)}
    if src.reference:
        body["reference"] = _reference(src)
    if curve_figs:
        body["curves"] = _figures(curve_figs, divs, "From <code>curves.csv</code>: line = mean over seeds, band = "
                                  "min–max over seeds. Switch methods on and off below a title; hover a point for "
                                  "its epoch and value; drag to pan, scroll or box to zoom.")
    if len(figs) > len(curve_figs):
        body["queries"] = _figures(figs[len(curve_figs):], divs, "From <code>b2kd_queries.csv</code>: mean over "
                                   "seeds, whiskers min–max; hover a point for its queries and top-1.")
    if src.tuning_figures or src.tuning_tables:
        body["tuning"] = _tuning(src)
    body["runs"] = _runs(src)
    body["provenance"] = _provenance(src)
    nav = "<nav>" + "".join(f'<a href="#{k}">{t}</a>' for k, t in SECTIONS if k in body) + "</nav></header>"
    controls = ('<div class="controls"><input id="filter" type="search" placeholder="filter rows: e.g. kd logits '
                'better" aria-label="filter table rows"></div>')
    sections = "".join(f'<section id="{k}"><h2>{t}</h2>{body[k]}</section>' for k, t in SECTIONS if k in body)
    footer = (f"<footer>Written by kdzoo {_e(__version__)} (<code>kdzoo report {_e(src.folder)}</code>) from the "
              "files in its folder; self-contained: it loads nothing from the network.</footer>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>kdzoo report: {_e(src.name)}</title><style>{_asset('report.css')}</style>{bokeh_js}</head>"
            f"<body>{_header(src)}{nav}{controls}{sections}{footer}"
            f"<script>{_asset('report.js')}</script>{script}</body></html>\n")
    return page


def _numbered_ids(texts: list[str]) -> list[str]:
    """Bokeh names its document and the figures' elements with random UUIDs; numbered ones keep the page
    the same for the same files (they only need to be unique within the page)."""
    seen: dict[str, str] = {}
    number = lambda m: seen.setdefault(m.group(0), str(uuid.UUID(int=len(seen) + 1)))  # noqa: E731
    return [UUID.sub(number, t) for t in texts]


def write(src: Sources, path: str | Path | None = None) -> Path:
    out = Path(path) if path is not None else src.folder / REPORT
    atomic_write_text(out, render(src))
    return out


__all__ = ["REPORT", "render", "write"]
