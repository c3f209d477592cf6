"""Cross-modal family: mammogram + H&E pathology → diagnosis, lesion box, grade (seeds 002 / 004).

Pieces: ``constants``, ``phantom`` (paired multi-domain cohort), ``preprocess`` (checks, [-1, 1]
mammogram scaling, Macenko stain normalisation, the same-patient check), ``mammogram`` (reading
a 2D mammogram file, DICOM included, with its geometry), ``model`` (shared MONAI ViT + modality
adapters, MixStyle, heads, losses), ``fitting`` (the training loop, shared by
``training/crossmodal.py`` and the leave-one-domain-out evaluation), ``tta`` (test-time
adaptation), ``explain`` (cross-attention evidence), ``inference`` (one patient and the
``--manifest`` cohort hook), ``evaluation`` (leave-one-domain-out), ``evidence_check`` (does the
heatmap point at the lesion), ``report``. Importing this package is
cheap; the registry reads :data:`FAMILY`.
"""

from responseai.registry import Family

FAMILY = Family(
    name="crossmodal",
    title="Cross-modal mammography + histopathology diagnosis with domain generalisation",
    predict="responseai.crossmodal.inference",
    report="responseai.crossmodal.report:crossmodal_report_from_prediction",
    synth="responseai.crossmodal.phantom",
    evaluate={"lodo": "responseai.crossmodal.evaluation", "evidence": "responseai.crossmodal.evidence_check"},
    train={"crossmodal": "training.crossmodal"},
)
