"""Breast DCE-MRI family: tumour segmentation and pCR prediction (stepwise clinically-guided attention).

Pieces: ``constants`` (phases, channels, clinical schema), ``preprocess`` (phase and mask
checks, DCE channels), ``phantom``, ``segmentation/`` and ``pcr/`` (each: model, inference,
evaluation), ``inference`` (one case end to end), ``report``, ``demo``, ``bench``. Importing
this package is cheap; the registry reads :data:`FAMILY`.
"""

from responseai.registry import Family

FAMILY = Family(
    name="breast",
    title="Breast DCE-MRI: tumour segmentation and pCR",
    predict="responseai.breast.inference",
    report="responseai.breast.report:report_from_prediction",
    synth="responseai.breast.phantom",
    evaluate={"pcr": "responseai.breast.pcr.evaluation", "segmentation": "responseai.breast.segmentation.evaluation"},
    train={"pcr": "training.breast_pcr", "segmentation": "training.breast_seg", "candidates": "training.breast_candidates",
           "outline": "training.breast_outline", "pcr-outline": "training.pcr_outline"},
    bench="responseai.breast.bench",
    demo="responseai.breast.demo",
)
