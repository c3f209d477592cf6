"""GradeGuidedFusion Logic on a real MRML scene: modalities on different grids → reference grid."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import GeometryMismatchError, MissingPhaseError
from responseai.image import Image
from responseai.slicer_bridge.nodes import add_volume_node


def test_modalities_are_resampled_onto_the_reference_grid(slicer_app):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic

    ct = Image(np.arange(16 * 20 * 24, dtype=np.float32).reshape(16, 20, 24), (1.0, 1.0, 2.0), (-12.0, -10.0, -16.0))
    pet = Image(np.full((8, 10, 12), 3.5, np.float32), (2.0, 2.0, 4.0), (-12.5, -10.5, -18.0))
    nodes = {"ct": add_volume_node(slicer_app.scene, ct, "CT"), "mri": None,
             "pet": add_volume_node(slicer_app.scene, pet, "PET")}
    images = GradeGuidedLogic(slicer_app.scene).read_modalities(nodes)
    assert set(images) == {"ct", "pet"}
    assert not images["pet"].grid_differences(ct)
    assert np.allclose(images["pet"].array[2:-2, 2:-2, 2:-2], 3.5)
    assert np.array_equal(images["ct"].array, ct.array)


def test_no_modality_or_no_overlap_is_a_clear_error(slicer_app):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic

    logic = GradeGuidedLogic(slicer_app.scene)
    with pytest.raises(MissingPhaseError, match="at least one of CT, MRI or PET"):
        logic.read_modalities({"ct": None, "mri": None, "pet": None})
    ct = Image(np.zeros((8, 8, 8), np.float32))
    far = Image(np.zeros((8, 8, 8), np.float32), origin=(500.0, 0.0, 0.0))
    nodes = {"ct": add_volume_node(slicer_app.scene, ct, "CT"), "mri": add_volume_node(slicer_app.scene, far, "MR")}
    with pytest.raises(GeometryMismatchError, match="mri: .*does not overlap"):
        logic.read_modalities(nodes)
