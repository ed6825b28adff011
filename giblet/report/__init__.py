"""HTML reports: one page per subject and a group page."""

from giblet.report.html import get_template, run_group_report, run_report

__all__ = ["get_template", "run_report", "run_group_report"]
