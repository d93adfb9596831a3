"""A self-contained HTML report: sections of text, tables and embedded PNG figures."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Section", "figure_html", "image_html", "table_html", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222;
       line-height: 1.45; }
h1 { border-bottom: 2px solid #345; } h2 { color: #345; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #bbb; padding: 0.2rem 0.6rem; }
th { background: #eef; } img { max-width: 100%; } .caveat { background: #fff4e0; padding: 0.5rem 1rem; }
code, pre { background: #f4f4f4; padding: 0.1rem 0.3rem; }
"""


@dataclass(frozen=True)
class Section:
    """A report section: a title and an HTML body (escape user text with :func:`html.escape`)."""

    title: str
    body: str


def figure_html(fig: Any, caption: str) -> str:
    """Embed a matplotlib figure as a PNG ``<figure>`` and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def image_html(path: str | Path, caption: str) -> str:
    """Embed a PNG file as a ``<figure>`` (base64: the report stays one self-contained file)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; cells are escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: str | Path, title: str, sections: Sequence[Section]) -> Path:
    """Write a self-contained HTML report and return its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h2>{html.escape(s.title)}</h2>\n{s.body}" for s in sections]
    doc = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n"
        + "\n".join(parts)
        + "</body></html>"
    )
    p.write_text(doc)
    return p
