"""What the GradeGuidedFusion form says about its inputs before anything runs (stdlib only).

The Slicer panel calls this on every selection change, before torch or pandas may be installed.
"""

from __future__ import annotations

from collections.abc import Mapping

from responseai.gradeguided.constants import MODALITIES, MODALITY_LABELS


def modality_status(nodes: Mapping[str, object]) -> str:
    """One line for the status label: which of the model's channels are given / missing."""
    given = [MODALITY_LABELS[m] for m in MODALITIES if nodes.get(m) is not None]
    missing = [MODALITY_LABELS[m] for m in MODALITIES if nodes.get(m) is None]
    if not given:
        return "No imaging volume selected: choose at least one of CT, MRI or PET."
    if not missing:
        return "All six channels given."
    return f"Given: {', '.join(given)}. Missing (zero channel, less reliable): {', '.join(missing)}."
