"""Overlay snapshots for a report, drawn by Slicer's own slice views on a headless scene.

Any family's report uses these: a background volume, a [0, 1] map and a tumour mask, cut
through the centre of the mask's bounding box. The MRML and VTK imports happen on call, so
building a report as data never needs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from responseai.image import Image


def tumour_centre_ras(mask: Image) -> tuple[float, float, float]:
    """RAS point at the centre of the mask's bounding box (where the snapshots cut)."""
    voxels = np.argwhere(mask.array > 0)
    centre_kji = (voxels.min(0) + voxels.max(0)) / 2.0
    ijk_to_ras = mask.ijk_to_ras()
    return tuple(float(v) for v in (ijk_to_ras @ np.append(centre_kji[::-1], 1.0))[:3])


def render_snapshots(background: Image, attention: Image, mask: Image, work_dir: Path) -> dict[str, Path]:
    """Axial/sagittal/coronal overlays drawn by Slicer's own slice views on a headless scene."""
    from responseai.slicer_bridge.headless import headless_app
    from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node
    from responseai.slicer_bridge.outputs import set_heatmap
    from responseai.slicer_bridge.render import discard_snapshot_views, render_orthogonal_snapshots

    app = headless_app()
    scene = app.scene
    reference = add_volume_node(scene, background, "post1")
    heatmap = set_heatmap(scene, attention, "attention", reference_node=reference)
    segmentation = add_segmentation_node(scene, mask, reference, "tumour")
    try:
        return render_orthogonal_snapshots(app, reference, heatmap, segmentation, tumour_centre_ras(mask), work_dir)
    finally:
        discard_snapshot_views(app)
        scene.Clear(True)
