"""BreastResponseAI Logic: MRML nodes in, core calls, MRML nodes out.

Imports ``slicer`` (MRML) and the core only, so CI runs it on a real scene from the
``slicer-core`` wheel and Slicer runs the very same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from responseai.errors import MissingPhaseError
from responseai.image import Image
from responseai.io import read_image, validate_mask
from responseai.pipeline import OPTIONAL_PHASES, REFERENCE_PHASE, REQUIRED_PHASES, check_mask, check_phases
from responseai.slicer_bridge.nodes import (
    add_segmentation_node,
    add_volume_node,
    segment_to_mask,
    volume_node_to_image,
)

TUMOUR_SEGMENT = "Tumour"


@dataclass
class CaseNodes:
    """The MRML nodes of one loaded case."""

    case_id: str
    phases: dict = field(default_factory=dict)  # phase name -> vtkMRMLScalarVolumeNode
    segmentation: object | None = None  # vtkMRMLSegmentationNode


class BreastLogic:
    """Case loading and MRML ⇄ array conversion for the BreastResponseAI module."""

    def __init__(self, scene) -> None:
        self.scene = scene

    def load_case(self, case_id: str, phases: dict[str, Image], mask: Image | None = None) -> CaseNodes:
        """Add one volume node per phase (and the tumour segment) with the images' geometry."""
        images = check_phases(phases)
        nodes = CaseNodes(case_id)
        for name, image in images.items():
            nodes.phases[name] = add_volume_node(self.scene, image, f"{case_id} {name}")
        if mask is not None:
            mask = check_mask(mask, images[REFERENCE_PHASE])
            nodes.segmentation = add_segmentation_node(
                self.scene, mask, nodes.phases[REFERENCE_PHASE], f"{case_id} segmentation", TUMOUR_SEGMENT
            )
        return nodes

    def load_case_folder(self, folder: str | Path, case_id: str | None = None) -> CaseNodes:
        """Load ``pre/post1/post2.nrrd`` (+ ``mask.nrrd``) from a case folder, as the demo writes it."""
        folder = Path(folder)
        phases = {
            name: read_image(folder / f"{name}.nrrd", name)
            for name in REQUIRED_PHASES + OPTIONAL_PHASES
            if name in REQUIRED_PHASES or (folder / f"{name}.nrrd").exists()
        }
        mask_path = folder / "mask.nrrd"
        mask = read_image(mask_path, "tumour mask") if mask_path.exists() else None
        return self.load_case(case_id or folder.name, phases, mask)

    def read_phases(self, phase_nodes: dict, resample: bool = False) -> dict[str, Image]:
        """Volume nodes → images on the reference (post1) grid; a missing required phase is an error."""
        images = {name: volume_node_to_image(node) for name, node in phase_nodes.items() if node is not None}
        return check_phases(images, resample)

    def read_mask(self, segmentation_node, reference_node, segment_name: str = TUMOUR_SEGMENT) -> Image:
        """The named segment on the reference grid, including any edit made in Segment Editor."""
        segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(segment_name)
        if not segment_id:
            raise MissingPhaseError(f"segmentation '{segmentation_node.GetName()}' has no segment named {segment_name}")
        mask = segment_to_mask(segmentation_node, segment_id, reference_node)
        validate_mask(mask, f"segment {segment_name}")
        return mask
