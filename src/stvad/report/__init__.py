"""Figures and the offline HTML report of an evaluation."""

from stvad.report.html import markdown_table_html, table_markdown, write_report
from stvad.report.overlay import TopFrame, overlay, plot_top_frames, top_frames
from stvad.report.plots import plot_roc, plot_timeline

__all__ = [
    "TopFrame",
    "markdown_table_html",
    "overlay",
    "plot_roc",
    "plot_timeline",
    "plot_top_frames",
    "table_markdown",
    "top_frames",
    "write_report",
]
