"""Open a report in a real, headless Chromium (Playwright driving the system's browser) and look at it.

Used by the browser test (tests/test_report_browser.py) and scripts/report_screenshots.py. It
drives an installed Chromium (Debian's ``chromium`` package, or ``$KDZOO_CHROMIUM``) and never
downloads one. The page is opened from its file with every request that is not the file itself
refused, so a report that still needed the network would fail here; console errors and page
errors are collected for the caller.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# a headless browser on a closed network: no sandbox (root in CI), no GPU, and none of the background
# services that would try to reach the network on their own
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
INSTALL = "pip install 'kdzoo[browser]' and a Chromium (Debian: apt-get install chromium)"


def find_chromium() -> str | None:
    """The browser to drive: ``$KDZOO_CHROMIUM``, else the first of BROWSERS on the PATH."""
    env = os.environ.get("KDZOO_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def missing() -> str:
    """Why no browser check can run here ("" when it can)."""
    if importlib.util.find_spec("playwright") is None:   # optional dependency (the 'browser' extra)
        return f"Playwright is not installed ({INSTALL})"
    if find_chromium() is None:
        return f"no Chromium found (set KDZOO_CHROMIUM or {INSTALL})"
    return ""


@dataclass
class Opened:
    """A report open in the browser: the Playwright page and what went wrong while it loaded."""
    page: Any
    errors: list[str] = field(default_factory=list)      # console errors and uncaught exceptions
    refused: list[str] = field(default_factory=list)     # requests for anything but the report's own file


@contextlib.contextmanager
def open_report(path: str | Path, width: int = 1280, height: int = 900) -> Iterator[Opened]:
    """Open ``path`` in a fresh headless Chromium profile and wait until BokehJS has drawn its figures."""
    why = missing()
    if why:
        raise ConfigError(why)
    from playwright.sync_api import sync_playwright

    url = Path(path).resolve().as_uri()
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="kdzoo-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(profile, executable_path=find_chromium(), headless=True,
                                                        args=list(FLAGS), viewport={"width": width, "height": height})
        try:
            page = context.new_page()
            opened = Opened(page)

            def route(r: Any) -> None:
                if r.request.url == url or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    opened.refused.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: opened.errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))
            page.goto(url)
            if page.evaluate("document.querySelectorAll('.figure').length") > 0:
                page.wait_for_function("window.Bokeh && Bokeh.documents.length > 0 && "
                                       "Bokeh.documents[0].is_idle", timeout=30_000)
            yield opened
        finally:
            context.close()


__all__ = ["FLAGS", "Opened", "find_chromium", "missing", "open_report"]
