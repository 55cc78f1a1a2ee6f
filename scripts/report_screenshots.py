"""Screenshots of report.html as a browser shows it, saved beside each report as report.png.

    python scripts/report_screenshots.py [FOLDER ...] [--write] [--height PIXELS]

FOLDER: bench output folders holding a report.html (default: the committed results whose reports
docs/bench.md links). --write first (re)writes each report.html from the folder's files with
``kdzoo report FOLDER --reference none`` (a committed folder is its own reference). The page is
opened in headless Chromium (kdzoo/report/browser.py: the system's browser, no network), a point of
the first learning curve is hovered so its tooltip shows, and the top of the page, down to
--height pixels, is saved with a 256-colour palette to keep the file small.
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kdzoo.errors import KdzooError  # noqa: E402
from kdzoo.report import browser  # noqa: E402

COMMITTED = ("quickstart", "fashion_mnist", "b2kd_fashion_mnist", "b2kd_fashion_mnist_shift")
SHOT = "report.png"
# where BokehJS drew the 4th point of the first curve of the first figure (the figure view maps data to pixels)
FIRST_POINT = """() => {
  for (const root of Object.values(Bokeh.index)) for (const fv of root.child_views || []) {
    const r = [...fv.renderer_views.values()].find(v => v.model.data_source && v.model.data_source.name
                                                       && v.model.data_source.name.startsWith("curve|"));
    if (!r) continue;
    const d = r.model.data_source.data, i = Math.min(3, d.epoch.length - 1);
    const box = fv.canvas_view.el.getBoundingClientRect();
    return {x: box.left + fv.frame.x_scale.compute(d.epoch[i]), y: box.top + fv.frame.y_scale.compute(d.y[i])};
  }
  return null;
}"""


def shoot(folder: Path, height: int) -> Path:
    from PIL import Image   # matplotlib's dependency

    with browser.open_report(folder / "report.html", height=height) as opened:
        page = opened.page
        if opened.errors or opened.refused:
            raise KdzooError(f"{folder}/report.html: {'; '.join(opened.errors + opened.refused)[:300]}")
        point = page.evaluate(FIRST_POINT) if page.locator(".figure").count() else None
        if point and point["y"] < height:
            page.mouse.move(point["x"], point["y"])
            page.wait_for_timeout(400)
        png = page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": page.viewport_size["width"],
                                                    "height": height})
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    out = folder / SHOT
    image.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, default=[Path("results") / n for n in COMMITTED])
    p.add_argument("--write", action="store_true", help="(re)write each report.html first")
    p.add_argument("--height", type=int, default=1800, help="pixels of the page's top to keep (default 1800)")
    args = p.parse_args(argv)
    why = browser.missing()
    if why:
        print(f"report_screenshots: {why}", file=sys.stderr)
        return 2
    # paths relative to the checkout, so a committed report names no folder of the machine that wrote it
    folders = [Path(os.path.relpath(f.resolve(), REPO)) if f.resolve().is_relative_to(REPO) else f.resolve()
               for f in args.folders]
    os.chdir(REPO)
    for folder in folders:
        if args.write:   # one process per report, as the command writes it: the same bytes as `kdzoo report`
            subprocess.run([sys.executable, "-m", "kdzoo", "report", str(folder), "--reference", "none"],
                           check=True, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
            report = folder / "report.html"
            print(f"{report}: {report.stat().st_size / 1e6:.2f} MB")
        shot = shoot(folder, args.height)
        print(f"{shot}: {shot.stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
