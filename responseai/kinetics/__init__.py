"""Breast DCE kinetics family: PE, SER, kinetic class, functional tumour volume, baseline → follow-up change.

Pieces: ``constants`` (phases, class labels and colours), ``analysis`` (one exam: maps, FTV,
worst curve; all thresholds in ``KineticsConfig``), ``registration`` (follow-up onto baseline),
``longitudinal`` (ΔFTV, ΔPE, Δdiameter), ``phantom``, ``inference`` (``responseai predict
kinetics``), ``report``, ``evaluation``. It builds on the breast family's phase checks
(``responseai.breast.preprocess``). Importing this package is cheap; the registry reads
:data:`FAMILY`.
"""

from responseai.registry import Family

FAMILY = Family(
    name="kinetics",
    title="Breast DCE kinetics: PE, SER, kinetic class, FTV, baseline → follow-up",
    predict="responseai.kinetics.inference",
    report="responseai.kinetics.report:kinetics_report_from_prediction",
    synth="responseai.kinetics.phantom",
    evaluate={"phantom": "responseai.kinetics.evaluation"},
)
