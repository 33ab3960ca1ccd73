"""The static HTML report: ``blinameta report``."""

from __future__ import annotations

from blinameta.report.build import ReportSummary, build_report

__all__ = ["ReportSummary", "build_report"]
