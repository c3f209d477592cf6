"""Vocabulary of the cross-modal family: classes, grades, modalities, phantom domains.

The phantom, preprocessing, model and evaluation all read these names, never the reverse, so a
renamed class or an added domain is one edit here.
"""

from __future__ import annotations

from responseai.manifest import Column, ManifestSchema, split_column

FAMILY = "crossmodal"
TASK = "crossmodal_diagnosis"
CLASSES = ("normal", "benign", "in_situ", "invasive")
MALIGNANT = ("in_situ", "invasive")  # the classes that carry a pathological grade
GRADES = ("G1", "G2", "G3")
NO_GRADE = -1  # normal / benign: grade not applicable (masked out of the ordinal loss)
MODALITIES = ("mammogram", "pathology")
# Four acquisition sites of the phantom; each has its own mammography vendor look and H&E stain.
DOMAINS = ("siteA", "siteB", "siteC", "siteD")
IMAGE_SIZE = 64  # phantom crop / tile side in pixels (the small CPU model's input size)
MIN_IMAGE_SIDE = 32  # smaller inputs carry too little texture to say anything
TOP_K = 5  # pathology patches shown as evidence for the high-attention mammogram region

# ``responseai predict crossmodal --manifest``: one row per patient, paths relative to the CSV.
# A cohort written by ``responseai synth crossmodal`` names its id column ``patient``: map it with
# ``--columns patient_id=patient``. The labels are optional (kept for evaluation, not read by predict).
MANIFEST_SCHEMA = ManifestSchema(FAMILY, (
    Column("patient_id", "id", "case identifier, unique (the case's output folder)", required=True),
    Column("mammogram", "path", "2D mammogram: PNG/TIFF/JPEG, NRRD/NIfTI or DICOM file", required=True),
    Column("pathology", "path", "H&E tile or folder of tiles (empty: mammogram only)"),
    Column("domain", "text", "acquisition site, when the model was trained on it (empty: a new site)"),
    Column("mammogram_patient_id", "text", "patient of the mammogram (checked against its DICOM PatientID)"),
    Column("pathology_patient_id", "text", "patient of the pathology (must match the mammogram's)"),
    Column("class", "category", "diagnosis label (optional)", values=CLASSES),
    Column("grade", "category", "grade of a malignant case (optional)", values=GRADES),
    split_column(),
))
