"""HTML reports: one page per subject and a group page."""

from giblet.report.html import (
    ReportConfig,
    ReportInputs,
    get_template,
    run_report,
)
from giblet.report.group_page import run_group_report

__all__ = ["ReportConfig", "ReportInputs", "get_template", "run_report", "run_group_report"]
