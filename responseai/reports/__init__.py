"""Per-patient reports: a JSON record validated against a schema and an A4 PDF for the chart.

A report is data first (sections of (quantity, value) rows plus snapshot images), so every
family builds its own sections (its ``report`` module) and shares this writer.
"""

from responseai.reports.writer import DISCLAIMER, ReportError, make_report, validate_report, write_report

__all__ = ["DISCLAIMER", "ReportError", "make_report", "validate_report", "write_report"]
