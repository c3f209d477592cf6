"""The breast family's vocabulary: DCE phases, network channels, clinical variables, classes.

Defined here, once; the phantom, preprocessing, models, Slicer form and report import them
(never the other way round).
"""

from __future__ import annotations

from collections.abc import Mapping

from responseai.clinical import Variable
from responseai.errors import ClinicalValueError
from responseai.manifest import Column, ManifestSchema, clinical_columns, split_column

REQUIRED_PHASES = ("pre", "post1")
OPTIONAL_PHASES = ("post2",)
REFERENCE_PHASE = "post1"  # the grid every phase, mask and map is put on
DCE_CHANNELS = ("pre", "post1", "post2", "subtraction")

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
BREAST_SCHEMA: dict[str, Variable] = {v.name: v for v in BREAST_VARIABLES}  # what the pCR model may read
# The two diameters a radiology report gives beside the largest (``tumour_size_mm``), perpendicular to
# it and to each other. On the form and in manifests to check the tumour mask's extent against an
# ellipsoid (responseai.breast.segmentation.extent); never a model input, so a pCR model is unchanged
# by them and a form without them loses nothing.
MEASUREMENT_VARIABLES: tuple[Variable, ...] = (
    Variable("tumour_size_2_mm", "Tumour size, 2nd diameter", "mm", 1, 200),
    Variable("tumour_size_3_mm", "Tumour size, 3rd diameter", "mm", 1, 200),
)
# The breast the biopsy-proven cancer is in (every neoadjuvant referral names it). On the form and in manifests
# to restrict the tumour search to that breast (responseai.breast.segmentation.side); never a model input.
# DICOM's Laterality codes and their words are read too; "both" (a bilateral cancer) searches both breasts.
LATERALITY = Variable("laterality", "Tumour side (biopsy)", categories=("left", "right"),
                      aliases=(("l", "left"), ("left", "left"), ("r", "right"), ("right", "right"), ("b", ""),
                               ("both", ""), ("bilateral", "")))
GUIDE_VARIABLES: tuple[Variable, ...] = MEASUREMENT_VARIABLES + (LATERALITY,)  # the form's non-model fields
FORM_SCHEMA: dict[str, Variable] = {v.name: v for v in BREAST_VARIABLES + GUIDE_VARIABLES}
CLINICAL_SCHEMA = FORM_SCHEMA  # the name every family's form schema has (the Slicer form reads it)


def form_errors(values: Mapping[str, object]) -> dict[str, str]:
    """Rules across fields, per field: a 2nd or 3rd diameter larger than the tumour size (the largest
    diameter), or given without it. Values that do not parse are left to each field's own check.

    Why refuse rather than reorder: a report's "18 × 25 × 20 mm" typed in its own order would make the
    wrong one the largest, and the tumour size is also a pCR model input; the user is told what to swap.
    """
    def number(name: str) -> float | None:
        try:
            return FORM_SCHEMA[name].validate(values.get(name))
        except ClinicalValueError:
            return None

    size, errors = number("tumour_size_mm"), {}
    for variable in MEASUREMENT_VARIABLES:
        value = number(variable.name)
        if value is not None and size is None:
            errors[variable.name] = f"{variable.label}: given without the tumour size (the largest diameter)"
        elif value is not None and value > size:
            errors[variable.name] = (f"{variable.label}: {value:g} mm is larger than the tumour size ({size:g} mm), "
                                     "which is the largest diameter; enter the largest as the tumour size")
    return errors
# How the form shows each category code (the codes stay in files, manifests and result.json).
CATEGORY_LABELS = {
    "pre": "Premenopausal", "post": "Postmenopausal", "negative": "Negative", "positive": "Positive",
    "luminal_a": "Luminal A", "luminal_b": "Luminal B", "her2_enriched": "HER2-enriched",
    "triple_negative": "Triple negative", "ductal": "Invasive ductal (NST)", "lobular": "Invasive lobular",
    "other": "Other", "1": "Grade 1", "2": "Grade 2", "3": "Grade 3", "unknown": "Unknown",
    "left": "Left breast", "right": "Right breast",
}

# One row per patient; paths relative to the manifest's folder (what `responseai synth breast`
# and the variant phantom write). Labels and `split` are needed only by training / evaluation.
MANIFEST_SCHEMA = ManifestSchema("breast", (
    Column("patient_id", "id", "patient identifier, unique", required=True),
    Column("site", "text", "acquisition site (training records it in the model card)"),
    Column("external", "category", "1 for an external-site case", values=("0", "1")),
    split_column(),
    Column("pre", "path", "pre-contrast phase (file or DICOM folder)"),
    Column("post1", "path", "first post-contrast phase (the reference grid)"),
    Column("post2", "path", "later post-contrast phase (optional)"),
    Column("dce", "path", "instead of pre / post1 / post2: one dynamic series (4D NIfTI / NRRD, or a DICOM folder)"),
    Column("dce_frames", "text", "frames of dce to use as pre, post1[, post2], e.g. 0,2,5 (empty: chosen by time)"),
    Column("mask", "path", "tumour mask on the post1 grid (prediction: replaces automatic segmentation)"),
    Column("anatomy", "path", "anatomy label map (phantoms; segmentation training and evaluation)"),
    *clinical_columns(BREAST_VARIABLES + GUIDE_VARIABLES),
    Column("pcr", "category", "pathological complete response: 1 yes, 0 no", values=("0", "1")),
), one_of=(REQUIRED_PHASES, ("dce",)))

# the segmentation's second candidate, written beside the tumour (``predict breast`` output) and loaded as a
# hidden segment in Slicer: the mask to use when the outlined candidate is not the tumour
RUNNER_UP_FILE = "runner-up.seg.nrrd"
RUNNER_UP_SEGMENT = "Runner-up candidate"
RUNNER_UP_COLOR = (0.35, 0.75, 0.95)
# said when the ranker's choice led the runner-up by less than its card's close_margin (docs/segmentation.md:
# on development exams about half of such choices were wrong, and the runner-up was mostly the tumour)
CLOSE_CALL_CAUTION = ("close call between the two most tumour-like candidates (score margin {margin:.2f}): "
                      "compare the outlined one with the runner-up candidate before trusting the prediction")
#: result.json's warnings about the segmentation, in the order the report headline, the viewer and the cohort table
#: say them: the mask is not in the breast the form names, it does not fit the clinical size, a close call or an
#: extent choice, an outline cut or grown to it
CAUTION_KEYS = ("side_caution", "extent_caution", "choice_caution", "outline_caution")
#: when the tumour mask (the model's or the user's) lies in the other breast than the form's laterality: the model
#: outlines the other breast only when it found no candidate in the named one
SIDE_CAUTION = ("the tumour mask lies in the {side} breast but the form names the {named} breast{why}: check the form's "
                "side and the mask before trusting the prediction")
SIDE_NOT_FOUND = " (the model found no tumour candidate there)"
#: when the form's side set aside the candidate the model ranks first (the mask then lies in the named breast)
SIDE_FIRST_CAUTION = ("without the form's side the model's first choice was a lesion in the {other} breast; the search "
                      "followed the form to the {named} breast: if the form's side is right this outline is the "
                      "tumour's, if not correct the side and run again")
#: when the clinical size overruled the ranker (the segmentation card's extent_choice)
EXTENT_CHOICE_CAUTION = ("the most tumour-like candidate did not fit the clinical tumour size and the runner-up did, "
                         "so the runner-up was outlined: compare it with the runner-up candidate offered (the model's "
                         "first choice) before trusting the prediction")
#: when the chosen outline was above the clinical size and cut to the tumour-sized piece inside it (extent_choice's
#: core_contrast): the cut is the program's reading of the image, which the user should check
OUTLINE_CUT_CAUTION = ("the model's outline ({outline_ml:.1f} ml) was far larger than the clinical tumour size allows, "
                       "so it was cut to the {cut_ml:.1f} ml piece inside it that enhances most like a tumour: check the "
                       "outline before relying on the volume or the pCR prediction")
#: when the chosen outline was below the clinical size and grown over the tumour of that size it is part of
#: (extent_choice's grow_small): the growth is the program's reading of the image, which the user should check
#: a grown outline whose volume stays within this band of the network's own gets no caution: its edge was re-drawn,
#: its extent not changed. Where clinical sizes run larger than the tumours, 2.13.0's growth fires on most exams and
#: mostly re-draws whole outlines (alt 303: 24 of 26 within the band, mean Dice 0.95); chosen on used development sets,
#: shipped by docs/segmentation-evaluation/outline-caution/RULE.md
REDRAWN_BAND = (0.8, 1.25)
OUTLINE_GROWN_CAUTION = ("the model's outline ({outline_ml:.1f} ml) was far smaller than the clinical tumour size allows, "
                         "so it was grown to the {grown_ml:.1f} ml of enhancing tissue around it that stands out from the "
                         "breast beyond a tumour of that size: check the outline before relying on the volume or the pCR "
                         "prediction")

def runner_up_note(candidate: Mapping[str, object]) -> str:
    """What the report, Slicer's results table and the viewer add after the runner-up candidate's size: why
    to look at it (a close call, or the model's own first choice set aside for the clinical size)."""
    if candidate.get("model_first_choice"):
        return " - the model's first choice, set aside because it did not fit the clinical size: compare the two"
    if candidate.get("close_call"):
        return " - a close call: compare it with the outlined one"
    return ""
