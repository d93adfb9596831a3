"""Open an HTML file in a real headless browser and report what a reader would see.

Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them) driven by Selenium. Selenium
Manager is never used: the driver and browser paths are given, so nothing is downloaded.

One call checks a report::

    page = render_page(html_path)  # screenshot in test-artifacts/<name>.png
    assert page.problems() == []

What a reader would notice, each a problem: a SEVERE console message, a figure that does not render, a
figure (``img``, ``svg``, ``canvas``) without a ``<figure>`` caption, a table typeset as text in a ``<pre>``
block, any element wider than the 1,200 px window (measured on the elements' bounding boxes, before the
window grows for the full-page screenshot), and entity text such as ``&lt;`` in the rendered page (text
escaped twice).

Without Chromium the calling test is skipped, unless ``XTML_REQUIRE_BROWSER`` is set (``make test`` sets it),
in which case it fails: CI must not pass by skipping.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["ARTIFACTS", "CHROMEDRIVER", "CHROMIUM", "VIEWPORT", "Figure", "PageCheck", "render_page"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
#: Width of the window the layout is checked in, CSS pixels: nothing on the page may be wider.
VIEWPORT = 1200

# --disable-background-networking and friends: otherwise Chromium calls Google's hosts at start-up, the
# closed network refuses them, and the refusals show up as errors
_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",  # the screenshot shows the page, not a scroll bar
    "--force-device-scale-factor=1",  # screenshot pixels = CSS pixels
    f"--window-size={VIEWPORT},800",
)

# every <img> and every outermost <svg> (an inline SVG figure; a nested <svg> is part of one), in page order
_FIGURES_JS = """
const out = [];
for (const el of document.querySelectorAll('img, svg:not(svg svg)')) {
  const r = el.getBoundingClientRect();
  if (el.tagName.toLowerCase() === 'img') {
    out.push({tag: 'img', label: el.alt || el.src.slice(0, 80), complete: el.complete,
              natural_width: el.naturalWidth, natural_height: el.naturalHeight,
              rendered_width: r.width, rendered_height: r.height});
  } else {
    const box = el.viewBox.baseVal;
    out.push({tag: 'svg', label: el.id || el.getAttribute('aria-label') || 'svg',
              complete: el.childElementCount > 0,
              natural_width: box && box.width ? box.width : el.width.baseVal.value,
              natural_height: box && box.height ? box.height : el.height.baseVal.value,
              rendered_width: r.width, rendered_height: r.height});
  }
}
return out;
"""

# the reader's checks, in the window as opened (VIEWPORT wide): elements wider than it or reaching past its
# right edge (hidden ones, e.g. in a closed <details>, have empty boxes and are skipped); <pre> blocks that
# hold a table (a <table>, two or more Markdown rows "| a | b |", or three or more lines with two or more
# gaps of 2+ spaces: fixed-width columns); images/SVG/canvas outside a <figure> with a non-empty
# <figcaption>; entity text (&lt; &amp; &#39; ...) in the rendered text
_CHECKS_JS = """
const vw = window.innerWidth;
const describe = el => {
  const cls = typeof el.className === 'string' && el.className ? '.' + el.className.split(' ')[0] : '';
  const text = (el.getAttribute('alt') || el.textContent || '').trim().replace(/\\s+/g, ' ').slice(0, 60);
  return el.tagName.toLowerCase() + cls + ' "' + text + '"';
};
const wide = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.width > vw + 0.5 || r.right > vw + 0.5 || r.left < -0.5) {
    wide.push(describe(el) + ' is ' + Math.round(r.width) + ' px wide, from ' + Math.round(r.left) + ' to '
              + Math.round(r.right) + ' px');
  }
}
const preTables = [];
for (const pre of document.querySelectorAll('pre')) {
  const lines = pre.textContent.split('\\n').filter(l => l.trim());
  const piped = lines.filter(l => /^\\s*\\|.*\\|\\s*$/.test(l)).length;
  const columns = lines.filter(l => (l.trim().match(/\\S {2,}(?=\\S)/g) || []).length >= 2).length;
  if (pre.querySelector('table') || piped >= 2 || columns >= 3) preTables.push(describe(pre));
}
const uncaptioned = [];
for (const el of document.querySelectorAll('img, svg:not(svg svg), canvas')) {
  const fig = el.closest('figure');
  const cap = fig ? fig.querySelector('figcaption') : null;
  if (!cap || !cap.textContent.trim()) uncaptioned.push(describe(el));
}
const entities = document.body.innerText.match(/&(?:[a-zA-Z][a-zA-Z0-9]*|#[0-9]+|#[xX][0-9a-fA-F]+);/g) || [];
return {viewport: vw, wide: wide, pre_tables: preTables, uncaptioned: uncaptioned, entities: entities};
"""

_SIZE_JS = """
const d = document.documentElement, b = document.body;
return [Math.max(d.scrollWidth, b ? b.scrollWidth : 0), Math.max(d.scrollHeight, b ? b.scrollHeight : 0),
        window.innerWidth, window.innerHeight];
"""


@dataclass(frozen=True)
class Figure:
    """One ``<img>`` or ``<svg>`` as the browser laid it out (sizes in CSS pixels)."""

    tag: str
    label: str  # alt text (img) or id (svg): names the figure in messages
    complete: bool  # img: the browser finished loading it (decoded or not); svg: it has something to draw
    natural_width: float  # img: decoded pixel size, 0 if broken; svg: viewBox or width attribute
    natural_height: float
    rendered_width: float  # the box it occupies on the page
    rendered_height: float

    @property
    def renders(self) -> bool:
        """It has content (an img: decoded to non-zero pixels) and occupies a non-empty box on the page.

        An inline SVG sized by CSS alone has no natural size, so only an img is held to one.
        """
        natural = self.tag != "img" or (self.natural_width > 0 and self.natural_height > 0)
        return self.complete and natural and self.rendered_width > 0 and self.rendered_height > 0


@dataclass(frozen=True)
class PageCheck:
    """What the browser showed for one HTML file."""

    url: str
    title: str
    severe: tuple[str, ...]  # console messages of level SEVERE (errors, uncaught exceptions, failed loads)
    console: tuple[dict, ...]  # every console entry, as chromedriver reports it
    figures: tuple[Figure, ...]
    screenshot: Path
    viewport: int = VIEWPORT  # width of the window the layout was checked in
    wide: tuple[str, ...] = ()  # elements wider than the window or reaching past it
    pre_tables: tuple[str, ...] = ()  # <pre> blocks that hold a table
    uncaptioned: tuple[str, ...] = ()  # figures without a <figure> caption
    entities: tuple[str, ...] = ()  # entity text (&lt; ...) in the rendered text: escaped twice

    def problems(self) -> list[str]:
        """Everything a reader would notice as broken; empty when the page is fine."""
        out = [f"console error: {m}" for m in self.severe]
        out += [f"figure does not render: {f}" for f in self.figures if not f.renders]
        out += [f"figure without a caption: {f}" for f in self.uncaptioned]
        out += [f"table inside <pre>: {t}" for t in self.pre_tables]
        out += [f"wider than the {self.viewport} px window: {w}" for w in self.wide]
        out += [f"entity text in the rendered page: {e}" for e in self.entities]
        if self.viewport != VIEWPORT:
            out.append(f"the layout was checked in a {self.viewport} px window, not {VIEWPORT} px")
        if not self.screenshot.is_file() or self.screenshot.stat().st_size == 0:
            out.append(f"no screenshot at {self.screenshot}")
        return out


def _browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    hint = "install Debian's chromium and chromium-driver (`make test` does)"
    if os.environ.get("XTML_REQUIRE_BROWSER"):
        raise FileNotFoundError(f"XTML_REQUIRE_BROWSER is set but {', '.join(missing)} is missing: {hint}")
    pytest.skip(f"no headless browser ({', '.join(missing)} missing): {hint}")


def render_page(html_path: str | Path, screenshot_path: str | Path | None = None) -> PageCheck:
    """Load ``html_path`` (file:// URL) in headless Chromium and save a full-page PNG screenshot.

    ``screenshot_path`` defaults to ``test-artifacts/<html file name>.png`` at the repository root.
    Skips the calling test if Chromium is absent and ``XTML_REQUIRE_BROWSER`` is not set.
    """
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"html_path={html_path} does not exist")
    shot = Path(screenshot_path) if screenshot_path is not None else ARTIFACTS / f"{html_path.stem}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="xtml-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
        try:
            driver.set_page_load_timeout(60)
            driver.get(html_path.as_uri())  # returns after the load event: data-URI images are decoded
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script(
                    "return document.readyState === 'complete' && "
                    "Array.from(document.images).every(i => i.complete)"
                )
            )
            checks = driver.execute_script(_CHECKS_JS)  # in the VIEWPORT-wide window, before it grows
            # full page: grow the window until the viewport holds the whole document
            width, height, inner_w, inner_h = driver.execute_script(_SIZE_JS)
            outer = driver.get_window_size()
            driver.set_window_size(width + outer["width"] - inner_w, height + outer["height"] - inner_h)
            figures = tuple(Figure(**f) for f in driver.execute_script(_FIGURES_JS))  # the layout shot below
            driver.save_screenshot(str(shot))
            title = driver.title
            url = driver.current_url
            console = tuple(driver.get_log("browser"))
        finally:
            driver.quit()
    severe = tuple(e["message"] for e in console if e.get("level") == "SEVERE")
    return PageCheck(
        url=url,
        title=title,
        severe=severe,
        console=console,
        figures=figures,
        screenshot=shot,
        viewport=int(checks["viewport"]),
        wide=tuple(checks["wide"]),
        pre_tables=tuple(checks["pre_tables"]),
        uncaptioned=tuple(checks["uncaptioned"]),
        entities=tuple(checks["entities"]),
    )
