"""The HTML report of a run: one self-contained file, figures embedded."""

from xtml.report.html import Markup, Section, figure_html, image_html, panel_html, table_html, write_report

__all__ = ["Markup", "Section", "figure_html", "image_html", "panel_html", "table_html", "write_report"]
