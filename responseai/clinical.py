"""The breast clinical variables: names, units, allowed values and validation.

One schema serves the phantom generator, the CSV manifests, the models' encoders, the Slicer
form and the report, so a variable can never mean two things in two places. ``None`` (or an
empty CSV cell) means *unknown*; models see it through a missing-value indicator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from responseai.errors import ClinicalValueError


@dataclass(frozen=True)
class Variable:
    """A clinical variable: numeric with a plausible range, or categorical with fixed levels."""

    name: str
    label: str
    units: str = ""
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()

    @property
    def is_categorical(self) -> bool:
        return bool(self.categories)

    def validate(self, value: object) -> float | str | None:
        """Return the value in canonical form, or raise with the variable and allowed values."""
        if _is_missing(value):
            return None
        if self.is_categorical:
            # pandas reads an integer-coded column with gaps as float: 2.0 means "2"
            text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
            if text not in self.categories:
                raise ClinicalValueError(
                    f"{self.label}: unknown category '{text}'; allowed: {', '.join(self.categories)} or unknown"
                )
            return text
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ClinicalValueError(f"{self.label}: '{value}' is not a number") from exc
        if not math.isfinite(number) or not (self.low <= number <= self.high):
            raise ClinicalValueError(
                f"{self.label}: {value} {self.units} is outside the allowed range {self.low:g}–{self.high:g} {self.units}".rstrip()
            )
        return number


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "unknown", "nan", "na")


BREAST_VARIABLES: tuple[Variable, ...] = (
    Variable("age", "Age", "years", 18, 100),
    Variable("menopausal_status", "Menopausal status", categories=("pre", "post")),
    Variable("er", "Oestrogen receptor (ER)", categories=("negative", "positive")),
    Variable("pr", "Progesterone receptor (PR)", categories=("negative", "positive")),
    Variable("her2", "HER2", categories=("negative", "positive")),
    Variable("ki67", "Ki-67", "%", 0, 100),
    Variable(
        "molecular_subtype",
        "Molecular subtype",
        categories=("luminal_a", "luminal_b", "her2_enriched", "triple_negative"),
    ),
    Variable("histological_type", "Histological type", categories=("ductal", "lobular", "other")),
    Variable("histological_grade", "Histological grade", categories=("1", "2", "3")),
    Variable("ct_stage", "Clinical T stage", categories=("T1", "T2", "T3", "T4")),
    Variable("cn_stage", "Clinical N stage", categories=("N0", "N1", "N2", "N3")),
    Variable("tumour_size_mm", "Tumour size", "mm", 1, 200),
)
BREAST_SCHEMA: dict[str, Variable] = {v.name: v for v in BREAST_VARIABLES}


def validate_clinical(values: Mapping[str, object], schema: Mapping[str, Variable] = BREAST_SCHEMA) -> dict:
    """Validate a record against a schema; unknown variable names are an error, absent ones unknown."""
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ClinicalValueError(f"unknown clinical variable(s): {', '.join(unknown)}; known: {', '.join(schema)}")
    return {name: var.validate(values.get(name)) for name, var in schema.items()}


def records_from_frame(frame, schema: Mapping[str, Variable] = BREAST_SCHEMA) -> list[dict]:
    """Clinical records (schema columns only) from a manifest DataFrame; absent columns are unknown."""
    columns = [name for name in schema if name in frame.columns]
    return [{name: row[name] for name in columns} for _, row in frame.iterrows()]


def field_errors(values: Mapping[str, object], schema: Mapping[str, Variable] = BREAST_SCHEMA) -> dict[str, str]:
    """Per-field messages for a form (empty when every entry is valid or unknown).

    The Slicer form shows these next to each field *before* the user presses Apply.
    """
    errors = {}
    for name, var in schema.items():
        try:
            var.validate(values.get(name))
        except ClinicalValueError as exc:
            errors[name] = str(exc)
    return errors
