"""The HTML report, opened in a real headless browser: no console errors, every figure drawn, a screenshot."""

import struct

import numpy as np

from browser import ARTIFACTS, render_page
from xtml.report.html import Section, figure_html, table_html, write_report

TITLE = "xtml browser check"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _figure(rng: np.random.Generator, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    FigureCanvasAgg(fig)  # Agg, without pyplot's global state or a display
    ax = fig.add_subplot()
    freq = np.linspace(0.1, 10.0, 200)
    ax.loglog(freq, 1.0 / freq + rng.exponential(0.05, freq.size))
    ax.set(title=title, xlabel="frequency (Hz)", ylabel="power")
    return fig


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_report_renders_in_browser(tmp_path, rng):
    sections = [
        Section("Spectrum", figure_html(_figure(rng, "power spectrum"), "power spectrum")),
        Section("Residuals", figure_html(_figure(rng, "residuals"), "residuals")),
        Section("Fit", table_html(["parameter", "value"], [["nu_qpo", 2.5], ["Q", "8 < 10"]])),
    ]
    html_path = write_report(tmp_path / "report.html", TITLE, sections)

    page = render_page(html_path, ARTIFACTS / "report_browser.png")
    print(f"screenshot: {page.screenshot}")

    assert page.problems() == []
    assert page.title == TITLE
    assert page.severe == ()
    assert [f.label for f in page.figures] == ["power spectrum", "residuals"]
    for fig in page.figures:
        assert fig.tag == "img"
        assert fig.natural_width > 0
        assert fig.natural_height > 0
        assert fig.rendered_width > 0
        assert fig.rendered_height > 0
    width, height = _png_size(page.screenshot)
    assert width > 0
    # full page: the screenshot is taller than both figures together
    assert height >= sum(f.rendered_height for f in page.figures)


def test_broken_image_is_detected(tmp_path):
    """Negative control: an image that does not decode is reported, so a passing check means something."""
    html_path = tmp_path / "broken_image.html"
    html_path.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>broken</title></head><body>'
        '<img alt="good" src="data:image/svg+xml,'
        "%3Csvg xmlns='http://www.w3.org/2000/svg' width='40' height='30'/%3E\">"
        '<img alt="broken" src="data:image/png;base64,iVBORw0KGgoAAAAAbm90IGEgcG5n">'
        "</body></html>"
    )

    page = render_page(html_path, tmp_path / "broken_image.png")

    by_label = {f.label: f for f in page.figures}
    assert by_label["good"].renders
    assert by_label["good"].natural_width == 40
    assert not by_label["broken"].renders
    assert by_label["broken"].natural_width == 0
    assert any("broken" in p for p in page.problems())


def test_console_error_is_detected(tmp_path):
    """Negative control: console.error and an uncaught exception are SEVERE messages."""
    html_path = tmp_path / "console_error.html"
    html_path.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>errors</title></head><body>'
        '<script>console.error("xtml-negative-control"); console.log("just info");</script>'
        '<script>throw new Error("xtml-uncaught");</script>'
        "</body></html>"
    )

    page = render_page(html_path, tmp_path / "console_error.png")

    assert page.title == "errors"
    assert any("xtml-negative-control" in m for m in page.severe)
    assert any("xtml-uncaught" in m for m in page.severe)
    assert not any("just info" in m for m in page.severe)  # only errors count
    assert any("just info" in e["message"] for e in page.console)
    assert len(page.problems()) == len(page.severe) == 2
