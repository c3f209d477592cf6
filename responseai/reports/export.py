"""Per-patient report export: the same function behind ``responseai report`` and the Slicer button.

Writes ``report.pdf`` + ``report.json`` (with overlay snapshots), the tumour mask as
``tumour.seg.nrrd`` and, when the input came from a DICOM series, as a DICOM SEG that
references it. Everything lands in the output folder together or not at all.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from responseai.image import Image
from responseai.io import read_image, read_segmentation, write_segmentation
from responseai.outputs import staged_output_dir
from responseai.reports.report import build_report, write_report

log = logging.getLogger(__name__)


def tumour_centre_ras(mask: Image) -> tuple[float, float, float]:
    """RAS point at the centre of the mask's bounding box (where the snapshots cut)."""
    voxels = np.argwhere(mask.array > 0)
    centre_kji = (voxels.min(0) + voxels.max(0)) / 2.0
    ijk_to_ras = mask.ijk_to_ras()
    return tuple(float(v) for v in (ijk_to_ras @ np.append(centre_kji[::-1], 1.0))[:3])


def export_breast_report(
    record: Mapping, card: Mapping, mask: Image, snapshots: Mapping[str, Path], out_dir: str | Path,
    dicom_source: str | Path | None = None,
) -> dict[str, Path]:
    """Report (PDF + JSON + snapshots), mask as .seg.nrrd, and DICOM SEG when the input was DICOM."""
    out_dir = Path(out_dir)
    report = build_report({**record, "model_card": card})
    with staged_output_dir(out_dir) as staging:
        write_report(report, snapshots, staging)
        write_segmentation(mask, staging / "tumour.seg.nrrd")
        if dicom_source is not None and Path(dicom_source).is_dir():
            from responseai.dicom_seg import write_dicom_seg

            write_dicom_seg(mask, dicom_source, staging / "tumour-seg.dcm")
        names = sorted(p.name for p in staging.iterdir())
    log.info("report for %s written to %s", record["case_id"], out_dir)
    return {name: out_dir / name for name in names}


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


def report_from_prediction(prediction_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Everything ``responseai predict`` wrote for a case → the per-patient report folder."""
    prediction_dir = Path(prediction_dir)
    record = json.loads((prediction_dir / "result.json").read_text(encoding="utf-8"))
    card = json.loads((prediction_dir / "model_card.json").read_text(encoding="utf-8"))
    post1_source = record["inputs"]["post1"]
    background = read_image(post1_source, "post1")
    mask = read_segmentation(prediction_dir / "tumour.seg.nrrd")
    attention = read_image(prediction_dir / "attention.nrrd", "attention")
    work = Path(tempfile.mkdtemp(prefix="responseai-snapshots-"))
    try:
        snapshots = render_snapshots(background, attention, mask, work)
        dicom = post1_source if Path(post1_source).is_dir() else None
        return export_breast_report(record, card, mask, snapshots, out_dir, dicom)
    finally:
        shutil.rmtree(work, ignore_errors=True)
