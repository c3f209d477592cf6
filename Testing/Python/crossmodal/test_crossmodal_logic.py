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
    assert again.heatmap is outputs.heatmap and again.table is outputs.table


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
