"""Clinical-variable machinery: a variable's name, units, allowed values, validation and encoding.

Each family declares its own schema (``<family>.constants``) and passes it in; nothing here
knows which variables a family uses. One schema serves the family's phantom, its CSV
manifests, its model's encoder, the Slicer form and the report, so a variable can never mean
two things in two places. ``None`` (or an empty CSV cell) means *unknown*; models see it
through a missing-value indicator.

Validation is stdlib only: the Slicer form checks entries before the core's heavy
dependencies are installed. The encoder needs numpy, which Slicer bundles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

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
    # other spellings files use for a category (lower case → category; "" → unknown), e.g. DICOM's "L" / "R" / "B"
    aliases: tuple[tuple[str, str], ...] = ()

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
            text = dict(self.aliases).get(text.lower(), text)
            if not text:
                return None
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


def validate_clinical(values: Mapping[str, object], schema: Mapping[str, Variable]) -> dict:
    """Validate a record against a schema; unknown variable names are an error, absent ones unknown."""
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ClinicalValueError(f"unknown clinical variable(s): {', '.join(unknown)}; known: {', '.join(schema)}")
    return {name: var.validate(values.get(name)) for name, var in schema.items()}


def records_from_frame(frame, schema: Mapping[str, Variable]) -> list[dict]:
    """Clinical records (schema columns only) from a manifest DataFrame; absent columns are unknown."""
    columns = [name for name in schema if name in frame.columns]
    return [{name: row[name] for name in columns} for _, row in frame.iterrows()]


def field_errors(values: Mapping[str, object], schema: Mapping[str, Variable],
                 across: Callable[[Mapping[str, object]], dict[str, str]] | None = None) -> dict[str, str]:
    """Per-field messages for a form (empty when every entry is valid or unknown).

    The Slicer form and the browser viewer show these next to each field *before* the user presses
    Apply. ``across`` is a family's rule between fields (the breast form's diameters: ``form_errors``
    of its constants); a field's own message wins over it.
    """
    errors = dict(across(values)) if across is not None else {}
    for name, var in schema.items():
        try:
            var.validate(values.get(name))
        except ClinicalValueError as exc:
            errors[name] = str(exc)
    return errors


@dataclass
class ClinicalEncoder:
    """Mean/mode imputation, z-scoring, one-hot, missing indicators: fitted on training rows only.

    Features per numeric variable: z-score (clipped to ±4 SD), missing flag. Per categorical
    variable: one column per level, missing flag. A missing value is imputed by the training
    mean (numeric) or left as all-zero one-hot, and its flag set: the model sees *that* a value
    was unknown, which is itself informative in real cohorts.
    """

    variables: tuple[Variable, ...]
    means: dict[str, float] = field(default_factory=dict)
    stds: dict[str, float] = field(default_factory=dict)

    def fit(self, records: Iterable[Mapping[str, object]]) -> "ClinicalEncoder":
        rows = [validate_clinical(r, self._schema) for r in records]
        for var in self.variables:
            if var.is_categorical:
                continue
            values = np.array([r[var.name] for r in rows if r[var.name] is not None], float)
            self.means[var.name] = float(values.mean()) if len(values) else 0.0
            self.stds[var.name] = float(values.std()) if len(values) > 1 and values.std() > 0 else 1.0
        return self

    @property
    def _schema(self) -> dict[str, Variable]:
        return {v.name: v for v in self.variables}

    @property
    def feature_names(self) -> list[str]:
        names = []
        for var in self.variables:
            names += [f"{var.name}={c}" for c in var.categories] if var.is_categorical else [var.name]
            names.append(f"{var.name}:missing")
        return names

    def transform_one(self, record: Mapping[str, object]) -> np.ndarray:
        """Encode one validated record (raises ClinicalValueError on bad values)."""
        values = validate_clinical(record, self._schema)
        features: list[float] = []
        for var in self.variables:
            value = values[var.name]
            if var.is_categorical:
                features += [float(value == c) for c in var.categories]
            else:
                z = 0.0 if value is None else (value - self.means[var.name]) / self.stds[var.name]
                features.append(float(np.clip(z, -4, 4)))
            features.append(float(value is None))
        return np.asarray(features, np.float32)

    def transform(self, records: Iterable[Mapping[str, object]]) -> np.ndarray:
        return np.stack([self.transform_one(r) for r in records])

    def to_dict(self) -> dict:
        return {"variables": [v.name for v in self.variables], "means": self.means, "stds": self.stds}

    @classmethod
    def from_dict(cls, data: Mapping, schema: Mapping[str, Variable]) -> "ClinicalEncoder":
        return cls(tuple(schema[n] for n in data["variables"]), dict(data["means"]), dict(data["stds"]))


def read_clinical_record(value: str | None) -> dict:
    """A clinical record from a JSON file path or an inline JSON object; absent means all unknown.

    One reader for every family's ``predict`` command, so ``--clinical`` means the same everywhere.
    """
    import json
    from pathlib import Path

    if not value:
        return {}
    try:
        text = value if value.lstrip().startswith("{") else Path(value).read_text(encoding="utf-8")
        record = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise ClinicalValueError(f"--clinical {value}: neither a readable JSON file nor a JSON object ({exc})") from exc
    if not isinstance(record, dict):
        raise ClinicalValueError(f"--clinical {value}: expected a JSON object of variable: value")
    return record
