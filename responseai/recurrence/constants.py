"""The recurrence family's vocabulary: modalities, horizons, risk groups, the phantom's clinical schema.

Defined once here; the phantom, preprocessing, model, Slicer panel and report import these.
Stdlib + :mod:`responseai.clinical` / :mod:`responseai.manifest` only, so the Slicer panel can
read them before torch is installed.
"""

from __future__ import annotations

from responseai.clinical import Variable
from responseai.manifest import Column, ManifestSchema, clinical_columns, split_column

TASK = "recurrence_risk"
# Token blocks the fusion knows. A model uses the subset its card lists (GBSG2: clinical only;
# GSE7390: clinical + molecular; the phantom: pathology, ultrasound, report, clinical).
MODALITIES = ("pathology", "ultrasound", "report", "clinical", "molecular")
MODALITY_LABELS = {"pathology": "Pathology tiles", "ultrasound": "Ultrasound", "report": "Report text",
                   "clinical": "Clinical variables", "molecular": "Gene expression"}
HORIZONS_YEARS = (3.0, 5.0, 7.0)  # the paper's time-dependent AUC horizons
RISK_GROUPS = ("low", "intermediate", "high")  # tertiles of the training risk scores
TILE_SIZE = 32  # pathology tile side (pixels, RGB)
ULTRASOUND_SIZE = 48  # ultrasound image side after resizing (grey)

# The phantom's (and the shipped model's) clinical record; GBSG2-like variables.
CLINICAL_VARIABLES: tuple[Variable, ...] = (
    Variable("age", "Age", "years", 18, 100),
    Variable("tumour_size", "Tumour size", "mm", 1, 150),
    Variable("positive_nodes", "Positive lymph nodes", "", 0, 60),
    Variable("grade", "Histological grade", categories=("1", "2", "3")),
    Variable("menopausal", "Menopausal status", categories=("pre", "post")),
    Variable("ki67", "Ki-67 index", "%", 0, 100),
    Variable("endocrine_therapy", "Endocrine therapy", categories=("no", "yes")),
)
CLINICAL_SCHEMA: dict[str, Variable] = {v.name: v for v in CLINICAL_VARIABLES}
CATEGORY_LABELS = {"pre": "Pre-menopausal", "post": "Post-menopausal", "no": "No", "yes": "Yes",
                   "1": "Grade 1", "2": "Grade 2", "3": "Grade 3", "unknown": "Unknown"}

# One row per patient, as `responseai synth recurrence` writes it (its truth columns eta, z_path,
# z_us, lvi are kept as extra columns); paths relative to the manifest's folder. An empty
# modality cell is a missing modality. The clinical record is the JSON file of ``clinical``
# (what --clinical reads) with the variable columns' non-empty cells over it, so a hospital's
# CSV can carry the variables as columns and need no JSON files. time_years / event are labels:
# prediction ignores them.
MANIFEST_SCHEMA = ManifestSchema("recurrence", (
    Column("case_id", "id", "patient / case identifier, unique", required=True),
    split_column(),
    Column("clinical", "path", "clinical record, JSON object of the variables (empty: columns only)"),
    *clinical_columns(CLINICAL_VARIABLES),
    Column("pathology", "path", "folder of pathology tile images, or one image (empty: missing)"),
    Column("ultrasound", "path", "ultrasound image, PNG/JPEG or NRRD/NIfTI (empty: missing)"),
    Column("report", "path", "diagnostic report, UTF-8 text file (empty: missing)"),
    Column("genes", "path", "gene values, JSON list / object, for a model with a gene block"),
    Column("time_years", "number", "recurrence-free survival time (years)", low=0),
    Column("event", "category", "1 recurrence observed, 0 censored", values=("0", "1")),
), id_column="case_id")
