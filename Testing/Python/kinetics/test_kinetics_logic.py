"""Kinetics in BreastResponseAI on a real MRML scene: job from nodes, colour table, label map, table, plot; reuse."""

from __future__ import annotations

import numpy as np
import pytest

from responseai.errors import MissingPhaseError, MissingSegmentError
from responseai.kinetics.constants import COLOR_TABLE_NAME, WASHOUT
from responseai.kinetics.longitudinal import PatientMismatchError
from responseai.slicer_bridge.nodes import add_segmentation_node, add_volume_node, volume_node_to_image
from slicer_sequence import add_sequence


def _exam_nodes(scene, exam, label: str) -> tuple[dict, object]:
    phases = {name: add_volume_node(scene, image, f"{label} {name}") for name, image in exam.phases.items()}
    return phases, add_segmentation_node(scene, exam.mask, phases["post1"], f"{label} lesion", "Tumour")


def test_job_from_nodes_then_colour_coded_results_reused_on_rerun(slicer_app, kinetics_case, tmp_path):
    from BreastResponseAILib.kinetics import KineticsLogic

    scene = slicer_app.scene
    baseline, segmentation = _exam_nodes(scene, kinetics_case.baseline, "t0")
    followup, _ = _exam_nodes(scene, kinetics_case.followup, "t1")
    logic = KineticsLogic(scene)
    job = logic.prepare_job("case", baseline, segmentation, followup, None, folder=tmp_path / "job")
    assert job.command[1:5] == ["-m", "responseai.cli", "predict", "kinetics"] and "--followup-mask" not in job.command
    outputs = logic.run(job)

    table = scene.GetFirstNodeByName(COLOR_TABLE_NAME)
    assert table.GetNumberOfColors() == 4 and table.GetColorName(WASHOUT) == "washout"
    labelmap = outputs.nodes["class"]
    assert labelmap.IsA("vtkMRMLLabelMapVolumeNode") and labelmap.GetDisplayNode().GetColorNodeID() == table.GetID()
    classes = volume_node_to_image(labelmap)
    assert not classes.grid_differences(volume_node_to_image(baseline["post1"]))
    inside = classes.array[kinetics_case.baseline.mask.array > 0]
    assert np.bincount(inside, minlength=4)[1:].argmax() + 1 == WASHOUT  # the phantom's index lesion washes out
    assert {"pe", "ser", "followup_class", "followup_pe", "followup_ser", "table", "curves", "chart"} <= set(outputs.nodes)
    rows = {outputs.nodes["table"].GetTable().GetValue(r, 0).ToString(): outputs.nodes["table"].GetTable().GetValue(r, 1)
            .ToString() for r in range(outputs.nodes["table"].GetTable().GetNumberOfRows())}
    assert rows["Baseline worst curve"] == "washout" and float(rows["ΔFTV (%)"]) < -20  # a shrinking lesion
    chart = outputs.nodes["chart"]
    assert chart.GetNumberOfPlotSeriesNodes() == len(outputs.series) >= 4
    assert outputs.series["washout"].GetYColumnName() == "washout"

    count = scene.GetNumberOfNodes()
    again = logic.import_results(job, outputs)
    assert scene.GetNumberOfNodes() == count
    assert all(again.nodes[k] is outputs.nodes[k] for k in outputs.nodes)
    assert scene.GetNodesByName(COLOR_TABLE_NAME).GetNumberOfItems() == 1


def test_bad_inputs_are_refused_before_any_job(slicer_app, kinetics_case, tmp_path):
    import slicer

    from BreastResponseAILib.kinetics import KineticsLogic, patient_id_of

    scene = slicer_app.scene
    baseline, segmentation = _exam_nodes(scene, kinetics_case.baseline, "t0")
    followup, _ = _exam_nodes(scene, kinetics_case.followup, "t1")
    logic = KineticsLogic(scene)
    with pytest.raises(MissingPhaseError, match="missing: post1, post2"):
        logic.prepare_job("case", {"pre": baseline["pre"]}, segmentation, folder=tmp_path / "a")
    with pytest.raises(MissingSegmentError):
        logic.prepare_job("case", baseline, None, folder=tmp_path / "b")
    with pytest.raises(MissingPhaseError, match="^follow-up exam: .*missing: post2"):
        logic.prepare_job("case", baseline, segmentation, {**followup, "post2": None}, folder=tmp_path / "d")
    assert not (tmp_path / "d").exists()  # nothing written before every check passed
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for node, patient in ((baseline["post1"], "PAT-1"), (followup["post1"], "PAT-2")):
        item = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), patient)
        hierarchy.SetItemAttribute(item, "DICOM.PatientID", patient)
        hierarchy.CreateItem(item, node)
    assert patient_id_of(baseline["post1"]) == "PAT-1"
    with pytest.raises(PatientMismatchError, match="'PAT-1' but the follow-up is of 'PAT-2'"):
        logic.prepare_job("case", baseline, segmentation, followup, folder=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_followup_loaded_as_a_sequence_fills_the_followup_phases(slicer_app, kinetics_case, tmp_path):
    """The follow-up exam as one sequence (frames at 0 / 100 / 400 s): its three phases as volume nodes, exactly the
    follow-up's voxels, its curves plotted at those times (the baseline's phase nodes at the nominal ones); a sequence
    of two frames is refused before any node is added (kinetics needs post2)."""
    import json

    import slicer

    from BreastResponseAILib.kinetics import TIME_COLUMNS, KineticsLogic

    followup = kinetics_case.followup.phases
    sequence = add_sequence(slicer_app.scene, [followup[p] for p in ("pre", "post1", "post2")], ["0", "100", "400"])
    nodes, reason = KineticsLogic(slicer_app.scene).phases_from_sequence(sequence)
    assert "frame 1 (100 s)" in reason and "frame 2 (400 s, the last)" in reason
    for phase, node in nodes.items():
        assert np.array_equal(volume_node_to_image(node).array, followup[phase].array)
    baseline, segmentation = _exam_nodes(slicer_app.scene, kinetics_case.baseline, "t0")
    logic = KineticsLogic(slicer_app.scene)
    job = logic.prepare_job("case", baseline, segmentation, nodes, folder=tmp_path / "job")
    config = json.loads(job.command[job.command.index("--config") + 1])
    assert config == {"followup_phase_times_s": [0.0, 100.0, 400.0]}
    outputs = logic.run(job)
    table = slicer.util.arrayFromTableColumn
    curves = outputs.nodes["curves"]
    assert list(table(curves, TIME_COLUMNS["baseline"])) == [0.0, 120.0, 420.0]
    assert list(table(curves, TIME_COLUMNS["followup"])) == [0.0, 100.0, 400.0]
    assert outputs.series["washout (follow-up)"].GetXColumnName() == TIME_COLUMNS["followup"]
    assert outputs.series["washout"].GetXColumnName() == TIME_COLUMNS["baseline"]
    short = add_sequence(slicer_app.scene, [followup["pre"], followup["post1"]], ["0", "100"], name="two frames")
    count = slicer_app.scene.GetNumberOfNodes()
    with pytest.raises(MissingPhaseError, match="post2"):
        KineticsLogic(slicer_app.scene).phases_from_sequence(short)
    assert slicer_app.scene.GetNumberOfNodes() == count
