"""The HTML report of a run: one self-contained file, figures embedded."""

from xtml.report.html import Section, figure_html, image_html, table_html, write_report

__all__ = ["Section", "figure_html", "image_html", "table_html", "write_report"]
