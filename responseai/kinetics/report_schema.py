"""JSON schema of the kinetics ``report.json`` (report format 1), the same envelope as every family's report.

Kept as Python so it ships wherever the package does (the installer copies ``responseai/*.py``);
:func:`write_schema` puts it in a file for :func:`responseai.reports.writer.write_report`.
"""

from __future__ import annotations

import json
from pathlib import Path

_ROW = {"type": "array", "prefixItems": [{"type": "string"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
_SUMMARY = {"type": "object", "required": ["ftv_ml", "ftv_by_ser_ml", "class_fractions", "worst_curve",
                                           "majority_class", "longest_diameter_ftv_mm", "curves"]}

REPORT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "ResponseAI breast DCE kinetics report",
    "type": "object",
    "required": ["report_format", "report_type", "title", "case_id", "created", "disclaimer", "headline", "sections",
                 "images", "data"],
    "additionalProperties": False,
    "properties": {
        "report_format": {"const": 1},
        "report_type": {"const": "kinetics"},
        "title": {"type": "string", "minLength": 1},
        "case_id": {"type": "string", "minLength": 1},
        "created": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}"},
        "disclaimer": {"type": "string", "pattern": "Research use only"},
        "headline": {"type": "object", "required": ["label", "value"],
                     "properties": {"label": {"type": "string"}, "value": {"type": "string"},
                                    "detail": {"type": "string"}}},
        "sections": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["title", "rows"], "additionalProperties": False,
            "properties": {"title": {"type": "string", "minLength": 1}, "rows": {"type": "array", "items": _ROW}}}},
        "images": {"type": "array", "items": {
            "type": "object", "required": ["key", "caption", "file"], "additionalProperties": False,
            "properties": {"key": {"type": "string"}, "caption": {"type": "string"},
                           "file": {"type": "string", "pattern": r"^snapshots/[A-Za-z0-9_-]+\.png$"}}}},
        "image_legend": {"type": "string", "minLength": 1},
        "data": {"type": "object", "required": ["config", "baseline", "followup", "changes", "registration", "inputs"],
                 "properties": {"config": {"type": "object", "required": ["pe_threshold", "background_fraction"]},
                                "baseline": _SUMMARY,
                                "followup": {"anyOf": [{"type": "null"}, _SUMMARY]},
                                "changes": {"type": ["object", "null"]},
                                "registration": {"type": ["object", "null"]},
                                "inputs": {"type": "object"}}},
    },
}


def write_schema(folder: Path) -> Path:
    """The schema as a file in ``folder`` (the report writer validates against a file)."""
    path = Path(folder) / "kinetics_report.schema.json"
    path.write_text(json.dumps(REPORT_SCHEMA, indent=1), encoding="utf-8")
    return path
