"""Run reports people would rather look at: numbers (`data`), a report page and a transcript viewer (`html`)."""

from pipeline.report.html import write_report, write_viewer

__all__ = ["write_report", "write_viewer"]
