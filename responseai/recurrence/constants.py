"""The recurrence family's vocabulary: modalities, horizons, risk groups, the phantom's clinical schema.

Defined once here; the phantom, preprocessing, model, Slicer panel and report import these.
Stdlib + :mod:`responseai.clinical` only, so the Slicer panel can read them before torch is
installed.
"""

from __future__ import annotations

from responseai.clinical import Variable

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
