"""BreastResponseAI Logic on a real MRML scene (slicer-core wheel): no mocks of the scene."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import GeometryMismatchError, InvalidImageError, MissingPhaseError
from responseai.image import Image
from slicer_sequence import add_sequence


def _oblique(image: Image) -> Image:
    """The same voxels with a rotated direction and shifted origin, to exercise IJK→RAS."""
    angle = np.deg2rad(17)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return Image(image.array, image.spacing, (12.5, -40.25, 7.0), rotation)


def test_phantom_case_round_trips_through_mrml(slicer_app, phantom_case):
    from BreastResponseAILib.logic import BreastLogic

    logic = BreastLogic(slicer_app.scene)
    phases = {name: _oblique(img) for name, img in phantom_case.phases.items()}
    mask = _oblique(phantom_case.mask)
    nodes = logic.load_case("case", phases, mask)

    assert nodes.phases["post1"].IsA("vtkMRMLScalarVolumeNode")
    assert nodes.segmentation.IsA("vtkMRMLSegmentationNode")
    back = logic.read_phases(nodes.phases)
    for name, image in phases.items():
        assert np.array_equal(back[name].array, image.array)
        np.testing.assert_allclose(back[name].spacing, image.spacing, atol=1e-6)
        np.testing.assert_allclose(back[name].origin, image.origin, atol=1e-6)
        np.testing.assert_allclose(back[name].direction, image.direction, atol=1e-6)
    mask_back = logic.read_mask(nodes.segmentation, nodes.phases["post1"])
    assert np.array_equal(mask_back.array, mask.array)
    assert not mask_back.grid_differences(mask)


def test_ijk_to_ras_matches_slicer_convention(slicer_app, phantom_case):
    """RAS = LPS with x and y negated: the node's matrix must say exactly that."""
    import vtk
    from responseai.slicer_bridge.nodes import add_volume_node

    image = _oblique(phantom_case.phases["pre"])
    node = add_volume_node(slicer_app.scene, image, "pre")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    corner = matrix.MultiplyPoint([3, 5, 7, 1])
    lps = np.asarray(image.origin) + image.direction @ (np.array([3, 5, 7]) * np.asarray(image.spacing))
    np.testing.assert_allclose(corner[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


def test_edited_segment_is_what_logic_reads(slicer_app, phantom_case):
    from BreastResponseAILib.logic import BreastLogic
    from responseai.slicer_bridge.nodes import set_segment_mask

    logic = BreastLogic(slicer_app.scene)
    nodes = logic.load_case("case", dict(phantom_case.phases), phantom_case.mask)
    edited = phantom_case.mask.array.copy()
    centre_x = int(np.argwhere(edited)[:, 2].mean())
    edited[:, :, :centre_x] = 0  # the user erases half of the tumour
    assert 0 < edited.sum() < phantom_case.mask.array.sum()
    set_segment_mask(nodes.segmentation, phantom_case.mask.with_array(edited))
    assert nodes.segmentation.GetSegmentation().GetNumberOfSegments() == 1
    back = logic.read_mask(nodes.segmentation, nodes.phases["post1"])
    assert np.array_equal(back.array, edited)


def test_missing_phase_and_other_grid_are_specific_errors(slicer_app, phantom_case):
    from BreastResponseAILib.logic import BreastLogic
    from responseai.slicer_bridge.nodes import add_volume_node

    logic = BreastLogic(slicer_app.scene)
    with pytest.raises(MissingPhaseError, match="pre"):
        logic.load_case("case", {"post1": phantom_case.phases["post1"]})
    shifted = Image(phantom_case.phases["pre"].array, phantom_case.phases["pre"].spacing, (-60.0, -30.0, -40.0))
    nodes = {"pre": add_volume_node(slicer_app.scene, shifted, "pre"),
             "post1": add_volume_node(slicer_app.scene, phantom_case.phases["post1"], "post1")}
    with pytest.raises(GeometryMismatchError, match=r"pre is not on the post1 grid: origin"):
        logic.read_phases(nodes)
    aligned = logic.read_phases(nodes, resample=True)
    assert not aligned["pre"].grid_differences(aligned["post1"])


def test_a_dce_sequence_fills_the_phases_with_the_frames_chosen_by_time(slicer_app, phantom_case):
    """Frames 0 / 45 s (before the bolus) / 110 s / 6 min: pre, the frame nearest 120 s and the last, each with
    its exact voxels and oblique geometry; a user's frame choice and a bad one; nothing added on a refusal."""
    from BreastResponseAILib.logic import BreastLogic

    logic = BreastLogic(slicer_app.scene)
    pre, post1, post2 = (_oblique(phantom_case.phases[name]) for name in ("pre", "post1", "post2"))
    sequence = add_sequence(slicer_app.scene, [pre, pre, post1, post2], ["0", "45", "110", "360"])
    nodes, reason = logic.phases_from_sequence(sequence)
    assert "frame 2 (110 s) the one nearest 120 s" in reason
    back = logic.read_phases(nodes)
    for name, image in {"pre": pre, "post1": post1, "post2": post2}.items():
        assert np.array_equal(back[name].array, image.array)
        np.testing.assert_allclose(back[name].direction, image.direction, atol=1e-6)
        np.testing.assert_allclose(back[name].origin, image.origin, atol=1e-6)
    assert nodes["post1"].GetName() == "post1: DCE series [frame 2, 110 s]"
    chosen, reason = logic.phases_from_sequence(sequence, "0,3")
    assert reason == "frames chosen by the user: pre = frame 0 (0 s), post1 = frame 3 (360 s)"
    assert set(chosen) == {"pre", "post1"}
    count = slicer_app.scene.GetNumberOfNodes()
    with pytest.raises(InvalidImageError, match="enhanc"):
        logic.phases_from_sequence(sequence, "0,1")  # the 45-s frame has no contrast yet
    assert slicer_app.scene.GetNumberOfNodes() == count
    untimed = add_sequence(slicer_app.scene, [pre, post1, post2], ["a", "b", "c"], unit="")
    assert logic.phases_from_sequence(untimed)[1].startswith("3 frames without acquisition times")
