"""report.html in a real browser (headless Chromium through Playwright): tables and figures render, nothing
is requested from the network, no console error, and sorting, filtering, a method switch and hovering work.

Skipped, with the reason, where Playwright or a Chromium is missing (``make test`` on a machine without a
browser); .ci/run installs Debian's chromium and sets KDZOO_REQUIRE_BROWSER, so in CI it runs or fails."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("bokeh", reason="bokeh not installed (pip install 'kdzoo[report]')")

from kdzoo.report import browser, write_report  # noqa: E402

WHY = browser.missing()
RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(autouse=True)
def needs_a_browser():
    """Skip without a browser, except where .ci/run installed one and asks for the test (KDZOO_REQUIRE_BROWSER)."""
    if WHY and os.environ.get("KDZOO_REQUIRE_BROWSER"):
        pytest.fail(f"the browser test must run here (KDZOO_REQUIRE_BROWSER is set): {WHY}")
    if WHY:
        pytest.skip(f"no browser check: {WHY}")


def colours(png: bytes) -> int:
    from PIL import Image   # matplotlib's dependency
    return len(Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 20) or [])


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser") / "quickstart"
    shutil.copytree(RESULTS / "quickstart", folder, ignore=shutil.ignore_patterns("report.html"))
    write_report(folder, reference=RESULTS / "quickstart")
    return folder


def rows(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector(selector, "t => Array.from(t.tBodies[0].rows).filter(r => !r.hidden)"
                                           ".map(r => Array.from(r.cells).map(c => c.textContent.trim()))")


def test_tables_and_figures_render_offline_without_errors(quickstart):
    summary, runs = pd.read_csv(quickstart / "summary.csv"), pd.read_csv(quickstart / "leaderboard.csv")
    with browser.open_report(quickstart / "report.html") as opened:
        page = opened.page
        assert opened.errors == [] and opened.refused == []
        assert page.locator("table[data-pair]").count() == 1
        assert len(rows(page, "table[data-pair]")) == len(summary)
        assert page.locator("table.runs tbody tr").count() == len(runs)
        assert page.locator("#reference table tbody tr").count() == len(summary)
        # one Bokeh document, one root per pair's curves, two panels (top-1, loss) each drawn on a canvas
        assert page.evaluate("Bokeh.documents.length") == 1
        assert page.evaluate("Bokeh.documents[0].roots().length") == 1
        assert page.locator(".figure canvas").count() >= 2
        figure = page.locator("#curves-0")
        figure.scroll_into_view_if_needed()
        assert figure.bounding_box()["height"] > 400 and colours(figure.screenshot()) > 50
        methods = pd.read_csv(quickstart / "curves.csv").groupby(["label", "access"]).ngroups
        assert page.locator("#toggles-curves-0 input.method-toggle").count() == methods
        assert opened.errors == []


def test_sorting_filtering_and_a_method_switch(quickstart):
    summary = pd.read_csv(quickstart / "summary.csv")
    with browser.open_report(quickstart / "report.html") as opened:
        page = opened.page
        board = "table[data-pair]"
        header = page.locator(f"{board} th", has_text="last-epoch top-1")
        method = [h.strip() for h in page.eval_on_selector_all(f"{board} th", "hs => hs.map(h => h.textContent)")
                  ].index("method")
        header.click()
        ascending = summary.sort_values("top1_mean").label.tolist()
        assert [r[method] for r in rows(page, board)] == ascending
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        assert [r[method] for r in rows(page, board)] == ascending[::-1]
        page.fill("#filter", "better")
        assert sorted(r[method] for r in rows(page, board)) == sorted(summary[summary.vs_ce == "better"].label)
        page.fill("#filter", "")
        assert len(rows(page, board)) == len(summary)

        figure = page.locator("#curves-0")
        figure.scroll_into_view_if_needed()
        before = figure.screenshot()
        box = page.locator("#toggles-curves-0 label", has_text="kd").filter(has_not_text="dkd").locator("input")
        ids = box.get_attribute("data-renderers").split()
        visible = "ids => ids.map(id => Bokeh.documents[0].get_model_by_id(id).visible)"
        assert len(ids) == 5 and page.evaluate(visible, ids) == [True] * 5
        box.uncheck()
        page.wait_for_timeout(300)
        assert page.evaluate(visible, ids) == [False] * 5
        assert figure.screenshot() != before            # the figure was drawn again without kd
        page.click("#toggles-curves-0 button[data-toggle-all=off]")
        everything = page.eval_on_selector_all("#toggles-curves-0 input", "bs => bs.flatMap(b => "
                                               "b.dataset.renderers.split(' '))")
        assert set(page.evaluate(visible, everything)) == {False}
        page.click("#toggles-curves-0 button[data-toggle-all=on]")
        assert set(page.evaluate(visible, everything)) == {True}
        assert opened.errors == []


def test_hovering_a_point_shows_its_epoch_and_value(quickstart):
    curves = pd.read_csv(quickstart / "curves.csv")
    kd = curves[curves.label == "kd"].groupby("epoch").test_top1.mean()
    with browser.open_report(quickstart / "report.html") as opened:
        page = opened.page
        page.locator("#curves-0").scroll_into_view_if_needed()
        # where Bokeh draws kd's 4th epoch: the figure view's scales map data to canvas pixels
        point = page.evaluate("""name => {
          const src = Bokeh.documents[0].get_model_by_name(name);
          for (const root of Object.values(Bokeh.index)) for (const fv of root.child_views) {
            if (![...fv.renderer_views.values()].some(r => r.model.data_source === src)) continue;
            const box = fv.canvas_view.el.getBoundingClientRect();
            return {x: box.left + fv.frame.x_scale.compute(src.data.epoch[3]),
                    y: box.top + fv.frame.y_scale.compute(src.data.y[3])};
          }
        }""", "curve|fmnist_teacher|fmnist_cnn_tiny|kd|logits")
        page.mouse.move(point["x"], point["y"])
        tooltip = page.get_by_text(f"{kd.iloc[3]:.2f} %")
        tooltip.wait_for(timeout=5000)
        assert tooltip.is_visible()
        assert opened.errors == []


def test_committed_report_opens_offline():
    with browser.open_report(RESULTS / "fashion_mnist" / "report.html") as opened:
        assert opened.errors == [] and opened.refused == []
        assert opened.page.locator("table[data-pair]").count() == 2
        assert opened.page.evaluate("Bokeh.documents[0].roots().length") == 2
