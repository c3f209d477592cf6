"""The grade-guided family's vocabulary: modalities, grades, stages, treatments, subtypes, clinical schema.

Defined here, once: the phantom, preprocessing, model, Slicer form and report import these
(never the other way round). Stdlib + :mod:`responseai.clinical` / :mod:`responseai.manifest` only, so the Slicer panel can
validate its form before torch or pandas are installed.
"""

from __future__ import annotations

from responseai.clinical import Variable
from responseai.manifest import Column, ManifestSchema, clinical_columns, split_column

MODALITIES = ("ct_nc", "ct_art", "ct_pv", "mr_t1", "mr_t2", "pet")
QUANTITATIVE = ("ct_nc", "ct_art", "ct_pv", "pet")  # HU and SUV: absolute units, training statistics
MRI = ("mr_t1", "mr_t2")  # no absolute unit: per-image centring
# How the Slicer table and the report name each channel (the code names stay in result.json).
MODALITY_LABELS = {"ct_nc": "CT non-contrast", "ct_art": "CT arterial", "ct_pv": "CT portal-venous",
                   "mr_t1": "MRI T1", "mr_t2": "MRI T2", "pet": "PET"}
GRADES = ("G1", "G2", "G3")
STAGES = ("I", "II", "III", "IV")
TREATMENTS = ("chemo", "immunotherapy", "targeted")
SUBTYPES = ("sensitive", "intermediate", "resistant")  # the phantom's latent response subtypes
CLINICAL_VARIABLES: tuple[Variable, ...] = (
    Variable("age", "Age", "years", 18, 100),
    Variable("pdl1", "PD-L1 tumour proportion score", "%", 0, 100),
    Variable("egfr", "EGFR status", categories=("mutant", "wild-type")),
    Variable("afp", "Alpha-fetoprotein (AFP)", "ng/mL", 0, 100000),
    Variable("stage", "Stage", categories=STAGES),
    Variable("treatment", "Treatment", categories=TREATMENTS),
)
CLINICAL_SCHEMA: dict[str, Variable] = {v.name: v for v in CLINICAL_VARIABLES}
# How the form shows each category code (the codes stay in files, manifests and result.json).
CATEGORY_LABELS = {
    "mutant": "Mutant", "wild-type": "Wild-type", "chemo": "Chemotherapy", "immunotherapy": "Immunotherapy",
    "targeted": "Targeted therapy", "unknown": "Unknown",
}

# One row per patient; paths relative to the manifest's folder (what `responseai synth gradeguided`
# writes). An empty modality cell is a missing modality; labels are needed only by training.
MANIFEST_SCHEMA = ManifestSchema("gradeguided", (
    Column("patient_id", "id", "patient identifier, unique", required=True),
    Column("site", "text", "acquisition site"),
    Column("external", "category", "1 for an external-site case", values=("0", "1")),
    split_column(),
    *(Column(m, "path", f"{MODALITY_LABELS[m]} volume (empty: missing)") for m in MODALITIES),
    Column("mask", "path", "tumour mask", required=True),
    *clinical_columns(CLINICAL_VARIABLES),
    Column("grade", "category", "histological grade", values=GRADES),
    Column("response", "category", "treatment response: 1 responder, 0 not", values=("0", "1")),
    Column("pfs_months", "number", "progression-free survival (months)", low=0),
    Column("pfs_event", "category", "1 progression observed, 0 censored", values=("0", "1")),
))
