"""Recurrence section Logic on a real MRML scene: job in a subprocess → results table + survival plot nodes."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import ResponseAIError
from responseai.image import Image
from responseai.slicer_bridge.nodes import add_volume_node

CLINICAL = {"age": "61", "tumour_size": "24", "positive_nodes": "2", "grade": "3", "menopausal": "post",
            "ki67": "", "endocrine_therapy": "yes"}


def _ultrasound_node(scene, phantom_files):
    from responseai.recurrence.preprocess import read_ultrasound

    case = next(p for p in sorted(phantom_files.iterdir()) if (p / "ultrasound.png").exists())
    image = Image(read_ultrasound(case / "ultrasound.png")[None].astype(np.float32), (0.2, 0.2, 1.0))
    return add_volume_node(scene, image, "US"), case


def test_job_runs_and_imports_a_table_and_a_survival_chart(slicer_app, tiny_recurrence, phantom_files, tmp_path):
    from BreastResponseAILib.recurrence import RecurrenceLogic
    from responseai.slicer_bridge.outputs import table_rows

    scene = slicer_app.scene
    ultrasound, case = _ultrasound_node(scene, phantom_files)
    logic = RecurrenceLogic(scene)
    job = logic.prepare_job("case", CLINICAL, None, ultrasound, "Carcinoma of the left breast. LVI: present.",
                            tiny_recurrence, tmp_path / "job")
    assert job.command[1:5] == ["-m", "responseai.cli", "predict", "recurrence"] and "--pathology" not in job.command
    outputs = logic.run(job)
    rows = table_rows(outputs.table)
    assert rows["Risk group"] in ("low", "intermediate", "high") and rows["Missing modalities"] == "pathology"
    assert {"RFS probability at 5 years", "Attention: Ultrasound", "Attention: Report text"} <= set(rows)
    curve = outputs.curve_table.GetTable()
    assert curve.GetNumberOfRows() > 10 and curve.GetValue(0, 1).ToDouble() == 1.0
    assert outputs.series.GetTableNodeID() == outputs.curve_table.GetID()
    assert outputs.chart.HasPlotSeriesNodeID(outputs.series.GetID())
    count = scene.GetNumberOfNodes()
    again = logic.import_results(job, outputs)  # a re-run updates the same nodes
    assert again.table is outputs.table and again.chart is outputs.chart and scene.GetNumberOfNodes() == count


@pytest.mark.parametrize("problem, message", [
    ("nothing", "every modality is missing"), ("age", "Age"), ("tiles", "tile folder not found"),
])
def test_bad_input_leaves_the_scene_and_disk_untouched(slicer_app, tiny_recurrence, tmp_path, problem, message):
    from BreastResponseAILib.recurrence import RecurrenceLogic

    scene = slicer_app.scene
    clinical = {"age": "250"} if problem == "age" else {} if problem == "nothing" else CLINICAL
    tiles = str(tmp_path / "no-such-folder") if problem == "tiles" else None
    before = scene.GetNumberOfNodes()
    with pytest.raises(ResponseAIError, match=message):
        RecurrenceLogic(scene).prepare_job("bad", clinical, tiles, None, "   ", tiny_recurrence, tmp_path / "job")
    assert scene.GetNumberOfNodes() == before and not (tmp_path / "job").exists()


def test_section_ui_has_the_inputs_and_the_shared_controls():
    import xml.etree.ElementTree as ET
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "BreastResponseAI"
    names = {w.get("name") for w in ET.parse(root / "Resources/UI/RecurrenceSection.ui").iter("widget")}
    assert {"tilesFolderLineEdit", "ultrasoundSelector", "reportTextEdit", "runButton", "cancelButton",
            "progressBar", "statusLabel"} <= names
    source = (root / "BreastResponseAISections/recurrence.py").read_text(encoding="utf-8")
    assert "class RecurrenceSection(ResponseAISection)" in source and 'uiFile = "UI/RecurrenceSection.ui"' in source


def test_the_module_form_fills_the_shared_clinical_variables():
    """The panel reuses the pCR form's age, size, grade, menopause and Ki-67; its own values win."""
    from BreastResponseAILib.recurrence import clinical_from_form

    from responseai.clinical import validate_clinical
    from responseai.recurrence.constants import CLINICAL_SCHEMA

    form = {"age": "61", "tumour_size_mm": "24", "histological_grade": "3", "menopausal_status": "unknown",
            "ki67": "", "er": "positive"}
    record = clinical_from_form(form, {"positive_nodes": 2, "age": 62})
    assert record == {"age": 62, "tumour_size": "24", "grade": "3", "positive_nodes": 2}
    validated = validate_clinical(record, CLINICAL_SCHEMA)
    assert validated["tumour_size"] == 24 and validated["grade"] == "3" and validated["menopausal"] is None
