"""Offscreen snapshots drawn by Slicer's slice views: heatmap over anatomy, segment outline visible.

Rendering must work in CI (EGL or OSMesa, no display): when it cannot, these tests fail with the
reason instead of skipping, because a report without its figures would otherwise ship unnoticed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from scipy import ndimage

from attention_stub import centre_ras, gaussian_attention, tumour_centre_ijk

SIZE = (512, 512)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One headless app; axial/sagittal/coronal with the heatmap, and again without it."""
    from responseai.breast.demo import demo_case
    from responseai.slicer_bridge.headless import headless_app
    from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node
    from responseai.slicer_bridge.outputs import add_heatmap_node
    from responseai.slicer_bridge.render import render_orthogonal_snapshots

    case = demo_case()
    app = headless_app()
    background = add_volume_node(app.scene, case.phases["post1"], "post1")
    segmentation = add_segmentation_node(app.scene, case.mask, background)
    heatmap = add_heatmap_node(app.scene, gaussian_attention(case.mask), "attention", background)
    centre = centre_ras(case.mask)
    out = tmp_path_factory.mktemp("render")
    with_heat = render_orthogonal_snapshots(app, background, heatmap, segmentation, centre, out / "heat", SIZE)
    plain = render_orthogonal_snapshots(app, background, None, segmentation, centre, out / "plain", SIZE)
    yield app, case, segmentation, with_heat, plain
    from responseai.slicer_bridge.render import discard_snapshot_views

    discard_snapshot_views(app)
    app.scene.Clear(True)


def _pixels(app, key: str, ras_points: np.ndarray) -> np.ndarray:
    """(row, column) in the PNG of RAS points, through the view's XYToRAS (VTK's y points up)."""
    from responseai.slicer_bridge.render import snapshot_slice_node

    xy_to_ras = snapshot_slice_node(app, key).GetXYToRAS()
    matrix = np.array([[xy_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    xy = (np.linalg.inv(matrix) @ np.c_[ras_points, np.ones(len(ras_points))].T).T
    return np.c_[SIZE[1] - 1 - np.round(xy[:, 1]), np.round(xy[:, 0])].astype(int)


def _read(path: Path) -> np.ndarray:
    return (mpimg.imread(path)[..., :3] * 255).astype(float)


def test_three_views_are_written_and_not_blank(rendered):
    _, _, _, with_heat, plain = rendered
    assert set(with_heat) == set(plain) == {"axial", "sagittal", "coronal"}
    for path in [*with_heat.values(), *plain.values()]:
        image = _read(path)
        assert image.shape[:2] == SIZE[::-1]
        assert image.std() > 10, f"{path.name} is blank: the offscreen OpenGL context rendered nothing"


def test_heatmap_colours_the_tumour_without_hiding_the_anatomy(rendered):
    app, case, _, with_heat, plain = rendered
    heat, grey = _read(with_heat["axial"]), _read(plain["axial"])
    ijk = tumour_centre_ijk(case.mask)
    ring = np.array([ijk + [di, dj, 0] for di in range(-3, 4) for dj in range(-3, 4)])
    rows, cols = _pixels(app, "axial", (case.mask.ijk_to_ras() @ np.c_[ring, np.ones(len(ring))].T).T[:, :3]).T
    warm_shift = (heat[rows, cols, 0] - heat[rows, cols, 2]) - (grey[rows, cols, 0] - grey[rows, cols, 2])
    assert warm_shift.mean() > 40, "the attention peak is not drawn in the heatmap's warm colours"
    corr = np.corrcoef(heat[rows, cols].mean(axis=1), grey[rows, cols].mean(axis=1))[0, 1]
    assert corr > 0.5, "the heatmap hides the image texture under it"
    far = (slice(5, 60), slice(5, 60))  # a corner far from the tumour: attention ~0, drawn transparent
    np.testing.assert_array_equal(heat[far], grey[far])


def test_segment_outline_is_drawn_at_the_mask_boundary(rendered):
    from responseai.slicer_bridge.render import OUTLINE_COLOR

    app, case, _, with_heat, _ = rendered
    image = _read(with_heat["axial"])
    k = int(round(tumour_centre_ijk(case.mask)[2]))
    plane = case.mask.array[k] > 0
    boundary = np.argwhere(plane & ~ndimage.binary_erosion(plane))  # (j, i)
    ijk = np.c_[boundary[:, 1], boundary[:, 0], np.full(len(boundary), k), np.ones(len(boundary))]
    rows, cols = _pixels(app, "axial", (case.mask.ijk_to_ras() @ ijk.T).T[:, :3]).T
    target = np.array(OUTLINE_COLOR) * 255
    is_outline = np.linalg.norm(image - target, axis=-1) < 60
    near = ndimage.maximum_filter(is_outline, size=9)  # outline lies on voxel edges, ±half a voxel (~2.7 px)
    assert near[rows, cols].mean() > 0.9, "segment outline missing along the tumour boundary"
    centre_row, centre_col = _pixels(app, "axial", centre_ras(case.mask)[None])[0]
    assert not is_outline[centre_row - 5:centre_row + 6, centre_col - 5:centre_col + 6].any()


def test_orientation_letters_follow_slicer_conventions(rendered):
    from responseai.slicer_bridge.render import orientation_letters, snapshot_slice_node

    app = rendered[0]
    assert orientation_letters(snapshot_slice_node(app, "axial")) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert orientation_letters(snapshot_slice_node(app, "coronal"))["top"] == "S"
    assert set(orientation_letters(snapshot_slice_node(app, "sagittal")).values()) == {"A", "P", "S", "I"}


def test_user_segment_display_is_restored_after_rendering(rendered):
    app, _, segmentation, _, _ = rendered
    assert segmentation.GetDisplayNode().GetVisibility()  # the user's own display node, shown again
    snapshot = app.scene.GetFirstNodeByName("ResponseAI snapshot display")
    assert segmentation.GetNumberOfDisplayNodes() == 2 and snapshot is segmentation.GetNthDisplayNode(1)
    assert not snapshot.GetVisibility()  # kept (re-adding display nodes crashed VTK), but hidden
