"""Grade-guided fusion family: CT / MRI / PET + clinical phenotype → grade, response, subtype (seed 003).

Pieces: ``constants`` (modalities, grades, clinical schema), ``phantom``, ``preprocess`` (ROI grid,
intensity scaling, SMOTE), ``model``, ``inference``, ``evaluation`` (what a missing modality
costs), ``reference`` (logistic-regression reference), ``report``. The ablation ladder trains,
so it lives in ``training/gradeguided_ablation.py``. Importing this package is cheap; the
registry reads :data:`FAMILY`.
"""

from responseai.registry import Family

FAMILY = Family(
    name="gradeguided",
    title="Grade-guided CT / MRI / PET fusion: grade, response, subtype",
    predict="responseai.gradeguided.inference",
    report="responseai.gradeguided.report:gradeguided_report_from_prediction",
    synth="responseai.gradeguided.phantom",
    evaluate={"missing": "responseai.gradeguided.evaluation", "ablation": "training.gradeguided_ablation"},
    train={"gradeguided": "training.gradeguided"},
)
