"""GradeGuidedFusion Logic: CT / MRI / PET volume nodes → images on one reference grid.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code.
"""

from __future__ import annotations

from responseai.errors import MissingPhaseError
from responseai.image import Image
from responseai.io import align_to_reference
from responseai.slicer_bridge.nodes import volume_node_to_image

MODALITY_ORDER = ("ct", "mri", "pet")


class GradeGuidedLogic:
    """Reads whatever modalities the user selected; any may be missing, but not all."""

    def __init__(self, scene) -> None:
        self.scene = scene

    def read_modalities(self, nodes: dict, reference: str | None = None) -> dict[str, Image]:
        """Volume nodes (name → node or None) → images resampled onto the reference modality grid.

        The reference is the first present modality in CT, MRI, PET order unless given: CT has
        the finest, most reliable geometry when present.
        """
        images = {name: volume_node_to_image(node) for name, node in nodes.items() if node is not None}
        if not images:
            raise MissingPhaseError("no imaging volume selected: choose at least one of CT, MRI or PET")
        if reference is None:
            reference = next((n for n in nodes if n in images and n.split("_")[0] in MODALITY_ORDER), next(iter(images)))
        return align_to_reference(images, reference, resample=True)
