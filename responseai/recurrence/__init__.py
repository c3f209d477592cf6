"""Recurrence-risk family: pathology tiles, ultrasound, report text, clinical (+ genes) → Cox risk (seed 001).

Pieces: ``constants``, ``survival`` (outcome checks, Cox loss, Breslow baseline), ``model``
(hierarchical cross-attention fusion with missing-modality compensation), ``fit``, ``text``
(offline MiniLM report embedding), ``preprocess``, ``phantom``, ``inference``, ``report``;
evaluations: ``evaluation`` (phantom), ``gbsg2`` and ``gse7390`` (real cohorts, cross-validated
against CoxPH and a random survival forest). Importing this package is cheap; the registry
reads :data:`FAMILY`.
"""

from responseai.registry import Family

FAMILY = Family(
    name="recurrence",
    title="Recurrence risk: cross-attention fusion of pathology, ultrasound, report text and clinical data",
    predict="responseai.recurrence.inference",
    report="responseai.recurrence.report:recurrence_report_from_prediction",
    synth="responseai.recurrence.phantom",
    evaluate={"phantom": "responseai.recurrence.evaluation", "gbsg2": "responseai.recurrence.gbsg2",
              "gse7390": "responseai.recurrence.gse7390"},
    train={"recurrence": "training.recurrence"},
)
