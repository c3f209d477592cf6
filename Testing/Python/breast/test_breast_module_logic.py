"""BreastResponseAI Logic end to end on a real MRML scene: job → nodes, re-run, bad input, saved scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk

from responseai.errors import ClinicalValueError, GeometryMismatchError, MissingPhaseError
from responseai.image import Image


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.fixture()
def demo(slicer_app):
    from BreastResponseAILib.logic import BreastJobs, BreastLogic
    from responseai.breast.demo import demo_case

    case = demo_case()
    logic = BreastLogic(slicer_app.scene)
    nodes = logic.load_case(case.patient_id, case.phases)
    return slicer_app, logic, BreastJobs(logic), nodes, case


def test_prediction_creates_segment_heatmap_and_table_then_reuses_them(demo, tmp_path: Path):
    from BreastResponseAILib.logic import import_results, run_job
    from responseai.slicer_bridge.outputs import table_rows

    app, logic, jobs, nodes, case = demo
    scene = app.scene
    job = jobs.prepare(case.patient_id, nodes.phases, case.clinical, folder=tmp_path / "run1")
    run_job(job)
    results = import_results(scene, job, nodes.phases["post1"])

    assert results.segmentation.IsA("vtkMRMLSegmentationNode") and results.record["mask_source"] == "model"
    np.testing.assert_allclose(_ijk_to_ras(results.heatmap), _ijk_to_ras(nodes.phases["post1"]), atol=1e-9)
    from responseai.slicer_bridge.nodes import volume_node_to_image

    heat = volume_node_to_image(results.heatmap)
    assert not heat.grid_differences(volume_node_to_image(nodes.phases["post1"]))
    heat = heat.array
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > 0.5
    assert results.heatmap.GetDisplayNode().GetColorNode().GetName() == "ResponseAI Inferno"
    rows = table_rows(results.table)
    assert float(rows["pCR probability"]) == pytest.approx(results.record["pcr_probability"], abs=1e-3)
    assert rows["Model"].startswith("breast_pcr")
    # the demo's form gives a tumour size: the mask's extent is checked against it, and the table says how
    assert "mask_to_clinical_size_ratio" in results.record
    assert rows["Mask extent check"] == results.record.get(
        "extent_caution", f"fits {results.record['clinical_size_yardstick']}")
    assert "sphere" in results.record["clinical_size_yardstick"]  # the largest diameter only on the demo's form
    assert len(rows["Mask diameters (mm)"].split(" x ")) == 3
    assert rows["Runner-up candidate"].startswith("none")  # the demo exam has one candidate in the breasts

    # the radiologist trims the automatic segment; the re-run must use the edited one
    edited_mask = logic.read_mask(results.segmentation, nodes.phases["post1"])
    trimmed = edited_mask.array.copy()
    trimmed[: int(np.argwhere(trimmed)[:, 0].mean())] = 0
    from responseai.slicer_bridge.nodes import set_segment_mask

    set_segment_mask(results.segmentation, edited_mask.with_array(trimmed))
    size = float(case.clinical["tumour_size_mm"])
    with pytest.raises(ClinicalValueError, match="larger than the tumour size"):  # refused before any job starts
        jobs.prepare(case.patient_id, nodes.phases, {**case.clinical, "tumour_size_2_mm": size + 5,
                                                     "tumour_size_3_mm": size / 2}, folder=tmp_path / "bad")
    three = {**case.clinical, "tumour_size_2_mm": round(size * 0.8, 1), "tumour_size_3_mm": round(size * 0.6, 1)}
    job2 = jobs.prepare(case.patient_id, nodes.phases, three, results.segmentation, folder=tmp_path / "run2")
    run_job(job2)
    again = import_results(scene, job2, nodes.phases["post1"], previous=results)
    assert again.record["mask_source"] == "user"
    assert again.record["clinical_size_yardstick"].endswith("ellipsoid")  # the report's three diameters used
    assert "tumour_size_2_mm" not in again.record["missing_clinical"]  # a measurement, not a model input
    assert again.heatmap is results.heatmap and again.table is results.table
    assert np.array_equal(logic.read_mask(again.segmentation, nodes.phases["post1"]).array, trimmed)

    # the report shows exactly the nodes the module made (edited segment included), drawn by
    # Slicer's slice views; last, because headless views must not outlive later segment edits
    from BreastResponseAILib.logic import export_report
    from pypdf import PdfReader

    from responseai.reports.snapshots import tumour_centre_ras
    from responseai.slicer_bridge.render import render_orthogonal_snapshots

    centre = tumour_centre_ras(logic.read_mask(again.segmentation, nodes.phases["post1"]))
    snapshots = render_orthogonal_snapshots(app, nodes.phases["post1"], again.heatmap,
                                            again.segmentation, centre, tmp_path / "snapshots")
    files = export_report(again, tmp_path / "report", snapshots)
    text = PdfReader(files["report.pdf"]).pages[0].extract_text()
    assert case.patient_id in text and f"{again.record['pcr_probability']:.3f}" in text


def test_bad_input_leaves_the_scene_as_it_was(demo, tmp_path: Path):
    from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node

    app, logic, jobs, nodes, case = demo
    scene = app.scene
    other_grid = add_volume_node(scene, Image(case.phases["pre"].array, (2.0, 2.0, 2.0), case.phases["pre"].origin), "pre 2mm")
    coarse = case.mask.with_array(case.mask.array)
    coarse_reference = add_volume_node(scene, Image(case.mask.array[::2, ::2, ::2].copy(), (3.2, 3.2, 4.0), case.mask.origin), "coarse")
    segment_elsewhere = add_segmentation_node(scene, Image(coarse.array[::2, ::2, ::2].copy(), (3.2, 3.2, 4.0), coarse.origin),
                                              coarse_reference, "coarse segmentation")
    before = _node_ids(scene)
    with pytest.raises(MissingPhaseError, match="pre"):
        jobs.prepare("c", {"pre": None, "post1": nodes.phases["post1"]}, case.clinical, folder=tmp_path / "a")
    with pytest.raises(GeometryMismatchError, match="pre is not on the post1 grid: spacing"):
        jobs.prepare("c", {"pre": other_grid, "post1": nodes.phases["post1"]}, case.clinical, folder=tmp_path / "b")
    with pytest.raises(ClinicalValueError, match="Age: 250"):
        jobs.prepare("c", nodes.phases, {**case.clinical, "age": "250"}, folder=tmp_path / "c")
    with pytest.raises(ClinicalValueError, match="Ki-67: 140"):
        jobs.prepare("c", nodes.phases, {**case.clinical, "ki67": "140"}, folder=tmp_path / "d")
    assert _node_ids(scene) == before
    # a segment drawn on another grid is resampled onto the post1 grid, not rejected
    job = jobs.prepare("c", nodes.phases, case.clinical, segment_elsewhere, folder=tmp_path / "e")
    assert "--mask" in job.command and _node_ids(scene) == before


def test_saved_scene_restores_the_form(demo, tmp_path: Path):
    from BreastResponseAILib.logic import read_form, write_form
    from responseai.slicer_bridge.headless import headless_app

    app, _, _, nodes, case = demo
    scene = app.scene
    parameter_node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "BreastResponseAI")
    clinical = {**case.clinical, "age": "61", "her2": "positive", "ki67": None}
    write_form(parameter_node, nodes.phases, clinical)
    scene.SetURL(str(tmp_path / "case.mrml"))
    assert scene.Commit()

    second_app = headless_app()  # a new Slicer session opening the saved scene
    reloaded = second_app.scene
    reloaded.SetURL(str(tmp_path / "case.mrml"))
    assert reloaded.Connect()
    restored = reloaded.GetFirstNodeByName("BreastResponseAI")
    phases, values, segmentation = read_form(restored)
    assert phases["post1"].GetName() == nodes.phases["post1"].GetName() and segmentation is None
    assert values["age"] == "61" and values["her2"] == "positive" and values["ki67"] == ""


def test_user_segment_is_never_an_output_and_nodes_follow_the_case(demo, tmp_path: Path):
    """A run with the user's segment, then one without: the user's node must not be reused or edited."""
    from BreastResponseAILib.logic import import_results, run_job
    from responseai.slicer_bridge.nodes import add_segmentation_node

    from responseai.breast.segmentation.side import side_of
    from responseai.slicer_bridge.outputs import table_rows

    app, logic, jobs, nodes, case = demo
    scene = app.scene
    user = add_segmentation_node(scene, case.mask, nodes.phases["post1"], "my tumour")
    drawn = logic.read_mask(user, nodes.phases["post1"]).array.copy()
    other = "left" if side_of(case.mask) == "right" else "right"  # the form names the breast the segment is not in
    job = jobs.prepare("case A", nodes.phases, {**case.clinical, "laterality": other}, user, folder=tmp_path / "a")
    run_job(job)
    first = import_results(scene, job, nodes.phases["post1"])
    assert first.segmentation is user and not first.automatic
    assert f"the form names the {other} breast" in table_rows(first.table)["Tumour side"]

    job = jobs.prepare("case B", nodes.phases, case.clinical, folder=tmp_path / "b")
    run_job(job)
    second = import_results(scene, job, nodes.phases["post1"], previous=first)
    assert second.segmentation is not user and second.automatic
    assert np.array_equal(logic.read_mask(user, nodes.phases["post1"]).array, drawn)
    assert user.GetName() == "my tumour"
    # reused output nodes carry the new case's name, not the previous patient's
    assert second.heatmap is first.heatmap and second.heatmap.GetName() == "case B attention"
    assert second.table.GetName() == "case B pCR results"
    assert second.segmentation.GetName() == "case B tumour (automatic)"


def test_results_arriving_after_the_scene_was_closed_are_refused(demo, tmp_path: Path):
    from BreastResponseAILib.logic import import_results, run_job
    from responseai.errors import ResponseAIError

    app, logic, jobs, nodes, case = demo
    job = jobs.prepare(case.patient_id, nodes.phases, case.clinical, folder=tmp_path / "run")
    run_job(job)
    app.scene.Clear(False)  # File > Close scene while the job was running
    with pytest.raises(ResponseAIError, match="no longer in the scene"):
        import_results(app.scene, job, nodes.phases["post1"])
    assert app.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 0


def test_the_status_line_names_each_caution_in_a_few_words(slicer_app):
    """The module's status line (read first) says which side caution it is: a mask outside the breast the form
    names, or a form that set aside the model's own first choice (the mask then lies in the named breast)."""
    from BreastResponseAILib.logic import summary_text

    base = {"pcr_probability": 0.4, "predicted_class": "no pCR", "tumour_side": "right",
            "clinical_used": {"laterality": "left"}}
    assert summary_text(base) == "pCR probability 0.40 (no pCR)"
    elsewhere = summary_text({**base, "side_caution": "the tumour mask lies in the right breast but the form names the left"})
    assert "the tumour mask is in the right breast, not the one on the form" in elsewhere
    followed = summary_text({**base, "clinical_used": {"laterality": "right"}, "side_caution": "without the form's side …"})
    assert "first choice was in the other breast: check the form's side" in followed and "not the one" not in followed
    grown = summary_text({**base, "outline_caution": "…", "outline_grown_from_ml": 1.0, "extent_caution": "…",
                          "mask_to_clinical_size_ratio": 0.2, "clinical_size_yardstick": "a sphere of 20 mm"})
    assert "its volume is 0.2 x a sphere of 20 mm" in grown and "grown to the clinical tumour size" in grown
    assert summary_text(base, lambda t: "[fr] " + t).startswith("[fr] pCR probability 0.40")  # Slicer's translation
