"""A self-contained HTML report: sections of text, real tables and embedded PNG figures with captions.

Every piece of text is escaped exactly once, where it enters the page: :func:`table_html` escapes its
cells, :func:`figure_html` and :func:`image_html` their captions, :func:`panel_html` its entries; a cell
or entry that carries its own markup is passed as :class:`Markup` (and escapes whatever it holds
itself).  Tables are ``<table>`` elements, never text in ``<pre>``; every figure is a ``<figure>`` with a
``<figcaption>`` saying what it shows and how to read it (an empty caption is an error); the page is
laid out to fit a 1,200 px wide window (long cells wrap, wide tables get narrower columns).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Markup", "Section", "figure_html", "image_html", "panel_html", "table_html", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #345; } h2 { color: #345; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; max-width: 100%; }
td, th { border: 1px solid #bbb; padding: 0.2rem 0.5rem; vertical-align: top; overflow-wrap: break-word; }
th { background: #eef; text-align: left; }
table.figures td { font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-size: 0.9rem; color: #444; padding: 0.2rem 0; }
figure { margin: 1rem 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9rem; color: #333; max-width: 58rem; margin-top: 0.3rem; }
.caveat { background: #fff4e0; padding: 0.5rem 1rem; }
.panel { border: 2px solid #345; background: #f6f8fb; padding: 0.4rem 1rem; margin: 1rem 0; }
.panel dt { font-weight: bold; margin-top: 0.4rem; } .panel dd { margin: 0 0 0.2rem 1rem; }
.unresolved { color: #8a4b00; font-weight: bold; }
code { background: #f4f4f4; padding: 0.1rem 0.3rem; overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: 0.3rem; white-space: pre-wrap; overflow-wrap: anywhere; }
"""


class Markup(str):
    """Text that is already HTML (it escaped what it holds): passed through by the builders unchanged."""

    __slots__ = ()


def _text(value: Any) -> str:
    """A value as page text: Markup as is, anything else escaped once."""
    return value if isinstance(value, Markup) else html.escape(str(value))


@dataclass(frozen=True)
class Section:
    """A report section: a title and an HTML body (escape user text with :func:`html.escape`)."""

    title: str
    body: str


def _caption(caption: str) -> str:
    if not str(caption).strip():
        raise ValueError("a figure needs a caption saying what it shows and how to read it")
    return _text(caption)


def _figure(data: bytes, caption: str, alt: str | None) -> str:
    text = _caption(caption)
    encoded = base64.b64encode(data).decode("ascii")
    alt_text = html.escape(alt if alt is not None else str(caption).split(".")[0][:120])
    return (
        f'<figure><img alt="{alt_text}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{text}</figcaption></figure>"
    )


def figure_html(fig: Any, caption: str, *, alt: str | None = None) -> str:
    """Embed a matplotlib figure as a PNG ``<figure>`` with its caption, and close it.

    ``caption`` says what the figure shows and how to read it (escaped; pass :class:`Markup` for
    markup); ``alt`` is the image's alternative text (default: the caption's first sentence).
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return _figure(buf.getvalue(), caption, alt)


def image_html(path: str | Path, caption: str, *, alt: str | None = None) -> str:
    """Embed a PNG file as a ``<figure>`` with its caption (base64: the report stays one file)."""
    return _figure(Path(path).read_bytes(), caption, alt)


def table_html(
    header: Sequence[Any], rows: Sequence[Sequence[Any]], *, caption: str | None = None, numeric: bool = False
) -> str:
    """An HTML table; cells are escaped (pass :class:`Markup` for a cell with markup), ``None`` is "n/a".

    ``caption`` (escaped) names the rows the table was computed on; ``numeric`` aligns figures.
    """

    def cell(c: Any, tag: str) -> str:
        return f"<{tag}>{'n/a' if c is None else _text(c)}</{tag}>"

    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{_text(caption)}</caption>" if caption else ""
    cls = ' class="figures"' if numeric else ""
    return f"<table{cls}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def panel_html(items: Sequence[tuple[str, Any]]) -> str:
    """A boxed headline panel: one ``term: answer`` entry per item (escaped, or :class:`Markup`)."""
    body = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in items)
    return f'<div class="panel"><dl>{body}</dl></div>'


def write_report(path: str | Path, title: str, sections: Sequence[Section]) -> Path:
    """Write a self-contained HTML report and return its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h2>{html.escape(s.title)}</h2>\n{s.body}" for s in sections]
    doc = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n"
        + "\n".join(parts)
        + "</body></html>"
    )
    p.write_text(doc)
    return p
