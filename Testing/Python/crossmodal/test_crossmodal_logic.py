"""Cross-modal Logic on a real MRML scene: 2D mammogram node → job → heatmap on its grid + table."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from responseai.crossmodal.phantom import make_cohort
from responseai.errors import InputFileError, InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.slicer_bridge.nodes import add_volume_node, volume_node_to_image
from responseai.slicer_bridge.outputs import table_rows


def test_mammogram_and_tiles_give_a_heatmap_on_the_mammogram_grid(slicer_app, tiny_weights, tmp_path):
    from BreastResponseAILib.crossmodal import CrossModalLogic

    cohort = make_cohort(4, 0)
    mammo = Image((cohort.mammogram[3] * 4000)[None].astype(np.float32), (0.1, 0.1, 1.0), (-3.2, -3.2, 0.0))
    node = add_volume_node(slicer_app.scene, mammo, "Mammogram")
    PILImage.fromarray(cohort.pathology[3]).save(tmp_path / "tile.png")
    logic = CrossModalLogic(slicer_app.scene)
    job = logic.prepare_job("case1", node, tmp_path / "tile.png", tiny_weights, tmp_path / "job")
    outputs = logic.run(job, timeout=300)
    heat = volume_node_to_image(outputs.heatmap)
    assert not heat.grid_differences(volume_node_to_image(node))
    rows = table_rows(outputs.table)
    assert "Diagnosis" in rows and "Conclusion" in rows and "Evidence patch 5" in rows
    again = logic.import_results(job, outputs)  # a re-run reuses the nodes
    assert again.heatmap is outputs.heatmap and again.table is outputs.table and again.gallery is outputs.gallery
    _check_gallery(outputs.gallery, outputs.record, job.out)


def _check_gallery(node, record: dict, out) -> None:
    """The top-K evidence patches, rank 1 on the left, as one RGB image node."""
    import slicer

    strip = slicer.util.arrayFromVolume(node)[0][::-1]
    first = np.asarray(PILImage.open(out / record["evidence"][0]["file"]).convert("RGB"))
    assert node.GetClassName() == "vtkMRMLVectorVolumeNode" and strip.shape[2] == 3
    assert len(record["evidence"]) == 5 and strip.shape[1] >= 5 * first.shape[1]
    assert np.array_equal(strip[: first.shape[0], : first.shape[1]], first)


def _write_prediction(job, image: Image, weights, box) -> None:
    """The job's result folder from an in-process mammogram-only prediction, with a known lesion box."""
    from responseai.crossmodal import inference

    result = inference.predict_crossmodal(image, (), (), weights)
    result.box = box
    inference.write_result(result, image, job.out)


def test_lesion_box_is_a_markups_roi_on_the_physical_grid_and_is_reused(slicer_app, tiny_weights, tmp_path):
    from BreastResponseAILib.crossmodal import CrossModalLogic

    mammo = Image(make_cohort(4, 0).mammogram[3][None].astype(np.float32), (0.1, 0.2, 1.0), (5.0, -3.0, 2.0))
    node = add_volume_node(slicer_app.scene, mammo, "Mammogram")
    logic = CrossModalLogic(slicer_app.scene)
    job = logic.prepare_job("case1", node, None, tiny_weights, tmp_path / "job")
    box = [10, 20, 30, 50]  # rows 10–29, columns 20–49
    _write_prediction(job, mammo, tiny_weights, box)
    first = logic.import_results(job)
    assert first.roi.GetClassName() == "vtkMRMLMarkupsROINode" and first.roi.GetName() == "case1 lesion box"
    # independent of the code: the box's pixel edges (LPS: x = origin + (col - 0.5)·0.1, y likewise) → RAS
    lps_low = np.array([5.0 + (20 - 0.5) * 0.1, -3.0 + (10 - 0.5) * 0.2])
    lps_high = np.array([5.0 + (50 - 0.5) * 0.1, -3.0 + (30 - 0.5) * 0.2])
    bounds = [0.0] * 6
    first.roi.GetRASBounds(bounds)
    np.testing.assert_allclose(bounds[:4], [-lps_high[0], -lps_low[0], -lps_high[1], -lps_low[1]], atol=1e-6)
    np.testing.assert_allclose(bounds[4:], [1.5, 2.5], atol=1e-6)  # one slice thick, centred on z = 2
    np.testing.assert_allclose(first.roi.GetSize(), [3.0, 4.0, 1.0], atol=1e-6)
    center = [0.0] * 3
    first.roi.GetCenterWorld(center)
    lps_centre = (lps_low + lps_high) / 2
    np.testing.assert_allclose(center, [-lps_centre[0], -lps_centre[1], 2.0], atol=1e-6)

    _write_prediction(job, mammo, tiny_weights, [0, 0, 1, 1])  # a re-run reuses the node, with the new box
    again = logic.import_results(job, first)
    assert again.roi is first.roi and slicer_app.scene.GetNodesByClass("vtkMRMLMarkupsROINode").GetNumberOfItems() == 1
    np.testing.assert_allclose(again.roi.GetSize(), [0.1, 0.2, 1.0], atol=1e-6)
    _write_prediction(job, mammo, tiny_weights, None)  # nothing localised: no stale box left behind
    assert logic.import_results(job, again).roi is None
    assert slicer_app.scene.GetNodesByClass("vtkMRMLMarkupsROINode").GetNumberOfItems() == 0


def test_bad_inputs_are_refused_before_any_job(slicer_app, tmp_path):
    from BreastResponseAILib.crossmodal import CrossModalLogic

    logic = CrossModalLogic(slicer_app.scene)
    with pytest.raises(MissingPhaseError, match="no mammogram selected"):
        logic.prepare_job("c", None)
    volume = add_volume_node(slicer_app.scene, Image(np.random.rand(4, 64, 64).astype(np.float32)), "MRI")
    with pytest.raises(InvalidImageError, match="one slice"):
        logic.prepare_job("c", volume)
    flat = add_volume_node(slicer_app.scene, Image(np.zeros((1, 64, 64), np.float32)), "Blank")
    with pytest.raises(InvalidImageError, match="constant"):
        logic.prepare_job("c", flat)
    good = add_volume_node(slicer_app.scene, Image(np.random.rand(1, 64, 64).astype(np.float32)), "M")
    with pytest.raises(InputFileError, match="does not exist"):
        logic.prepare_job("c", good, tmp_path / "missing.png")
    assert not list(tmp_path.iterdir())


def test_panel_ui_has_the_widgets_the_section_uses():
    """The .ui cannot be loaded without Slicer's widgets here; its names are what ResponseAISection wires."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "BreastResponseAI"
    names = {w.get("name"): w.get("class") for w in ET.parse(root / "Resources/UI/CrossModalSection.ui").iter("widget")}
    assert names["mammogramSelector"] == "qMRMLNodeComboBox" and names["pathologyLineEdit"] == "QLineEdit"
    assert {"runButton", "cancelButton", "progressBar", "statusLabel"} <= set(names)
    section = (root / "BreastResponseAISections/crossmodal.py").read_text(encoding="utf-8")
    assert "class CrossModalSection(ResponseAISection)" in section and 'uiFile = "UI/CrossModalSection.ui"' in section
