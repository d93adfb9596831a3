"""The HTML report, opened in a real headless browser: no console errors, every figure drawn and captioned,
real tables, nothing wider than a 1,200 px window, text escaped once, a screenshot.  Each check has a
negative control (a page with the defect, which must be caught), and the checks run on the reports of a
training run and of the demo."""

import struct

import numpy as np
import pytest

from browser import ARTIFACTS, VIEWPORT, render_page
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


def _page(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.html"
    path.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{name}</title></head><body>'
        f"{body}</body></html>"
    )
    return render_page(path, tmp_path / f"{name}.png")


_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)


def test_a_table_inside_pre_is_detected(tmp_path):
    """Negative control: a Markdown table and a fixed-width table in <pre> are problems; prose is not."""
    markdown = "<pre>| scorer | TPR |\n|---|---|\n| LRT | 0.31 |</pre>"
    fixed = "<pre>scorer  roc_auc  tpr\nlogistic  0.77  0.22\nLRT  0.63  0.15</pre>"
    code = '<pre>{\n "dt": 0.0039,\n "n_segments": 4\n}</pre>'  # a configuration, not a table
    page = _page(tmp_path, "pre_tables", markdown + fixed + code)
    assert len(page.pre_tables) == 2
    assert sum("table inside <pre>" in p for p in page.problems()) == 2


def test_an_element_wider_than_the_window_is_detected(tmp_path):
    page = _page(tmp_path, "wide", '<p>fits</p><div style="width: 1500px">too wide</div>')
    assert page.viewport == VIEWPORT
    assert any("too wide" in w and "1500 px wide" in w for w in page.wide)
    assert any("wider than the 1200 px window" in p for p in page.problems())
    # a wide table inside a scrolling container is still wider than the window: caught too
    scrolled = (
        '<div style="overflow-x: auto"><table><tr><td style="min-width: 1400px">x</td></tr></table></div>'
    )
    assert _page(tmp_path, "scrolled", scrolled).wide


def test_a_figure_without_a_caption_is_detected(tmp_path):
    body = (
        f'<figure><img alt="captioned" src="{_PNG}"><figcaption>what it shows</figcaption></figure>'
        f'<img alt="bare" src="{_PNG}">'
        f'<figure><img alt="empty caption" src="{_PNG}"><figcaption> </figcaption></figure>'
    )
    page = _page(tmp_path, "captions", body)
    assert len(page.uncaptioned) == 2
    assert any("bare" in u for u in page.uncaptioned)
    assert any("empty caption" in u for u in page.uncaptioned)
    assert not any("captioned" in u and "empty" not in u for u in page.uncaptioned)


def test_entity_text_is_detected(tmp_path):
    """Negative control: text escaped twice shows "&lt;" to the reader; escaped once it shows "<"."""
    page = _page(tmp_path, "entities", "<p>p &lt; 0.01 (escaped once)</p><p>p &amp;lt; 0.01 (twice)</p>")
    assert page.entities == ("&lt;",)
    assert any("entity text" in p for p in page.problems())


def test_figure_html_refuses_an_empty_caption(rng):
    with pytest.raises(ValueError, match="caption"):
        figure_html(_figure(rng, "x"), " ")


def test_training_run_report_passes_every_check(learn_run, capsys):
    from xtml.cli import main

    assert main(["report", str(learn_run)]) == 0
    capsys.readouterr()
    page = render_page(learn_run / "report.html", ARTIFACTS / "report_training_run.png")
    assert page.problems() == [], page.problems()
    assert len(page.figures) >= 8


def test_demo_report_passes_every_check(quick_demo):
    page = render_page(quick_demo / "report.html", ARTIFACTS / "report_demo.png")
    assert page.problems() == [], page.problems()
    assert len(page.figures) >= 3
    detect = render_page(quick_demo / "detect" / "report.html", ARTIFACTS / "report_demo_detect.png")
    assert detect.problems() == [], detect.problems()
