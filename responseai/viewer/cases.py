"""The cases a viewer offers, their files (confined to the given folders) and the clinical form.

A *case folder* holds one patient's phases named as the manifest columns are: ``pre``,
``post1``, optional ``post2`` (any of :data:`responseai.io.IMAGE_SUFFIXES`), an optional
``mask`` (tumour segment; replaces automatic segmentation, as the manifest's ``mask`` column
does) and an optional ``clinical.json``. It may also hold the other families' inputs, each
offered in the page only when present (:data:`EXTRA_INPUTS`): recurrence (``tiles/``,
``ultrasound.*``, ``report.txt``) and cross-modal diagnosis (``mammogram.*``, optional
``pathology/`` or ``pathology.*``). A manifest lists many cases (the family's manifest
schema, one validator). The browser only ever sends a case *index*: no path typed in a page
is opened, and every file a case names must lie inside the folder it was given from.

Family pieces are looked up by name through the registry (the base never imports a family).
Stdlib + the core base only; no trame, no MRML.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from responseai import registry
from responseai.errors import ResponseAIError
from responseai.io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

FAMILY = "breast"  # the family the viewer's form and Run button serve
PHASES = ("pre", "post1", "post2")
REQUIRED_PHASES = ("pre", "post1")
DYNAMIC = "dce"  # instead of the phases: one dynamic series (file stem or manifest column; responseai.dynamic)
REFERENCE_PHASE = "post1"
CLINICAL_FILE = "clinical.json"

# The other families' inputs a case folder may hold (name → how it is found). The 2D picture
# suffixes are the recurrence / cross-modal readers' own (a unit test checks they agree; they are
# not imported here because those modules import torch); the CLIs check the files themselves.
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom")
EXTRA_INPUTS = {  # name → (stem, suffixes or None for a folder, alternative suffixes for the stem as a file)
    "tiles": ("tiles", None, ()),  # recurrence: folder of pathology tiles
    "ultrasound": ("ultrasound", PICTURE_SUFFIXES + IMAGE_SUFFIXES, ()),  # recurrence
    "report": ("report", (".txt",), ()),  # recurrence: diagnostic report text
    "mammogram": ("mammogram", PICTURE_SUFFIXES + IMAGE_SUFFIXES + DICOM_SUFFIXES, ()),  # cross-modal
    "pathology": ("pathology", None, PICTURE_SUFFIXES),  # cross-modal: tile folder or one tile
}
RECURRENCE_INPUTS = ("tiles", "ultrasound", "report")
CROSSMODAL_INPUTS = ("mammogram",)  # required; pathology optional
# The breast form's variables that mean the same as a recurrence variable (breast name → recurrence
# name), as the Slicer module's recurrence panel maps them; the recurrence variables the form lacks
# (positive nodes, endocrine therapy) are read from the case's clinical.json when it has them.
RECURRENCE_FROM_FORM = {"age": "age", "tumour_size_mm": "tumour_size", "histological_grade": "grade",
                        "menopausal_status": "menopausal", "ki67": "ki67"}


class CaseError(ResponseAIError):
    """A case folder or file the viewer cannot use; the message is shown in the page."""


def family_piece(piece: str, family: str = FAMILY):
    """``module:attribute`` of a family's package by name, e.g. ``constants:CLINICAL_SCHEMA``."""
    package = next((p for p in registry.FAMILY_PACKAGES if p.rsplit(".", 1)[-1] == family), None)
    if package is None:
        raise registry.UnknownEntryError(f"unknown model family '{family}'")
    return registry.resolve(f"{package}.{piece}")


def clinical_schema(family: str = FAMILY) -> dict:
    """The family's clinical form schema (the same one the Slicer form reads)."""
    return dict(family_piece("constants:CLINICAL_SCHEMA", family))


def category_labels(family: str = FAMILY) -> dict[str, str]:
    try:
        return dict(family_piece("constants:CATEGORY_LABELS", family))
    except AttributeError:
        return {}


def form_errors(values: Mapping[str, object], family: str = FAMILY) -> dict[str, str]:
    """Per-field messages, exactly the Slicer module's (``responseai.clinical.field_errors`` with the
    family's rules across fields, where it has them)."""
    from responseai.clinical import field_errors

    try:
        across = family_piece("constants:form_errors", family)
    except AttributeError:
        across = None
    return field_errors(values, clinical_schema(family), across)


def form_fields(family: str = FAMILY) -> list[dict]:
    """What the page needs to draw the form: name, label, units, range or categories."""
    labels = category_labels(family)
    fields = []
    for name, var in clinical_schema(family).items():
        entry = {"name": name, "label": var.label + (f" ({var.units})" if var.units else "")}
        if var.is_categorical:
            entry["items"] = [{"title": "unknown", "value": ""}] + [
                {"title": labels.get(c, c), "value": c} for c in var.categories]
        else:
            entry["hint"] = f"{var.low:g}–{var.high:g} {var.units}".rstrip() + "; empty = unknown"
        fields.append(entry)
    return fields


def form_values(clinical: Mapping[str, object], family: str = FAMILY) -> dict[str, str]:
    """A clinical record as form strings ('' = unknown)."""
    out = {}
    for name in clinical_schema(family):
        value = clinical.get(name)
        if value is None or (isinstance(value, float) and value != value):
            out[name] = ""
        elif isinstance(value, float) and value.is_integer():
            out[name] = str(int(value))
        else:
            out[name] = str(value)
    return out


@dataclass
class CaseEntry:
    """One case on offer: its files (absolute, inside ``root``) or why it cannot be used."""

    case_id: str
    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    clinical: dict = field(default_factory=dict)
    error: str = ""
    dce_frames: str = ""  # the frames of a dynamic series to read as the phases (empty: chosen by time)

    def confined(self, path: Path) -> Path:
        """``path`` resolved; refused when it lies outside this case's folder."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise CaseError(f"{self.case_id}: {path} lies outside the case folder {self.root}")
        return resolved


def _phase_file(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _extra_inputs(entry: CaseEntry) -> None:
    """The other families' inputs present in the case folder, confined (a folder's files too)."""
    for name, (stem, suffixes, file_suffixes) in EXTRA_INPUTS.items():
        found = None
        if suffixes is None:
            folder = entry.root / stem
            if folder.is_dir():
                for child in folder.iterdir():  # a link inside pointing out is refused as well
                    entry.confined(child)
                found = folder
        for suffix in (suffixes or file_suffixes) if found is None else ():
            for candidate in (entry.root / f"{stem}{suffix}", entry.root / f"{stem}{suffix.upper()}"):
                if candidate.is_file():
                    found = candidate
                    break
            if found is not None:
                break
        if found is not None:
            entry.files[name] = entry.confined(found)


def recurrence_clinical(entry: CaseEntry, form: Mapping[str, object]) -> dict:
    """The recurrence clinical record: the form's values under :data:`RECURRENCE_FROM_FORM`, plus the
    recurrence-only variables from the case's clinical.json. Empty / unknown values are left out
    (missing); the recurrence job validates the record with its own schema."""
    schema = clinical_schema("recurrence")
    record = {target: form.get(source) for source, target in RECURRENCE_FROM_FORM.items()}
    mapped = set(RECURRENCE_FROM_FORM.values())
    record.update({name: entry.clinical.get(name) for name in schema if name not in mapped})
    return {name: value for name, value in record.items()
            if name in schema and value not in (None, "", "unknown") and value == value}


def case_from_folder(folder: str | Path) -> CaseEntry:
    """A case folder as an entry; a problem is recorded in ``error`` (shown in the page), not raised."""
    root = Path(folder).resolve()
    entry = CaseEntry(root.name, root)
    try:
        if not root.is_dir():
            raise CaseError(f"case folder {folder} does not exist or is not a folder")
        for stem in (*PHASES, "mask", DYNAMIC):
            found = _phase_file(root, stem)
            if found is not None:
                entry.files[stem] = entry.confined(found)
        _extra_inputs(entry)
        _check_images(entry)
        missing = [p for p in REQUIRED_PHASES if p not in entry.files] if DYNAMIC not in entry.files else []
        if missing:
            raise CaseError(f"case folder {root.name}: no {' or '.join(missing)} image "
                            f"(expected {missing[0]}.nrrd / .nii.gz …; a case folder holds pre, post1, "
                            f"optional post2, mask, {CLINICAL_FILE})")
        clinical = root / CLINICAL_FILE
        if clinical.is_file():
            try:
                entry.clinical = dict(json.loads(clinical.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as exc:
                raise CaseError(f"case folder {root.name}: {CLINICAL_FILE} is not a JSON object ({exc})") from exc
    except CaseError as exc:
        entry.error = str(exc)
    return entry


def _check_images(entry: CaseEntry) -> None:
    """A case gives its phases or one dynamic series, not both (which would be which?)."""
    if DYNAMIC in entry.files and any(p in entry.files for p in PHASES):
        raise CaseError(f"{entry.case_id}: both a dynamic series ({DYNAMIC}) and single phases: keep one or the other")


def cases_from_manifest(path: str | Path, family: str = FAMILY) -> list[CaseEntry]:
    """Every row of a validated family manifest; files confined to the manifest's folder."""
    from responseai.manifest import read_manifest

    manifest = read_manifest(path, family_piece("constants:MANIFEST_SCHEMA", family))
    root = Path(path).resolve().parent
    schema = clinical_schema(family)
    entries = []
    for _, row in manifest.frame.iterrows():
        entry = CaseEntry(str(row["patient_id"]), root)
        try:
            for column in (*PHASES, "mask", DYNAMIC):
                value = row.get(column)
                if isinstance(value, str) and value:
                    entry.files[column] = entry.confined(Path(value))
            entry.dce_frames = str(row.get("dce_frames") or "")
            _check_images(entry)
            entry.clinical = {name: row[name] for name in schema if name in row and row[name] is not None}
        except CaseError as exc:
            entry.error = str(exc)
        entries.append(entry)
    return entries


def collect_cases(case_dirs: list[str] | None = None, manifest: str | None = None) -> list[CaseEntry]:
    """The cases ``--case`` (repeatable) and ``--manifest`` name, in that order."""
    entries = [case_from_folder(folder) for folder in case_dirs or []]
    if manifest:
        entries += cases_from_manifest(manifest)
    seen: dict[str, int] = {}
    for entry in entries:  # two folders with the same name stay distinguishable in the list
        seen[entry.case_id] = seen.get(entry.case_id, 0) + 1
        if seen[entry.case_id] > 1:
            entry.case_id = f"{entry.case_id} ({seen[entry.case_id]})"
    return entries
