"""Per-patient reports: a JSON record validated against a schema and an A4 PDF for the chart.

A report is data first (sections of (quantity, value) rows plus snapshot images), so every
module — BreastResponseAI, GradeGuidedFusion — builds its own sections and shares the writer.
"""

from responseai.reports.report import (
    DISCLAIMER,
    build_report,
    make_report,
    validate_report,
    write_report,
)

__all__ = ["DISCLAIMER", "build_report", "make_report", "validate_report", "write_report"]
