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


# ------------------------------------------------------------------ full job through the subprocess
@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from test_gradeguided_inference import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("gg-logic"))


def _case_nodes(scene, pet_scale: float = 1.0):
    """A phantom case in the scene: CT / MRI on the case grid, PET on a coarser grid, a tumour segment."""
    from responseai.io import resample_to
    from responseai.slicer_bridge.nodes import add_segmentation_node
    from responseai.gradeguided.phantom import generate_case

    case = generate_case(5, 2)
    nodes = {name: add_volume_node(scene, case.images[name], name) for name in ("ct_nc", "ct_art", "ct_pv", "mr_t1")}
    pet = case.images["pet"]
    coarse = Image(np.zeros((16, 16, 16), np.float32), tuple(2 * s for s in pet.spacing), pet.origin)
    pet_coarse = resample_to(pet, coarse)
    nodes["mr_t2"] = None
    nodes["pet"] = add_volume_node(scene, pet_coarse.with_array(pet_coarse.array * pet_scale), "pet")
    segmentation = add_segmentation_node(scene, case.mask, nodes["ct_nc"], "tumour", "Tumour")
    return case, nodes, segmentation


CLINICAL = {"age": "64", "pdl1": "", "egfr": "mutant", "afp": "", "stage": "III", "treatment": "unknown"}


def test_job_runs_in_a_subprocess_and_imports_table_and_map(slicer_app, tiny_weights, tmp_path):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic
    from responseai.gradeguided.form import modality_status
    from responseai.slicer_bridge.nodes import volume_node_to_image

    scene = slicer_app.scene
    case, nodes, segmentation = _case_nodes(scene)
    logic = GradeGuidedLogic(scene)
    assert "Missing (zero channel, less reliable): MRI T2" in modality_status(nodes)
    job = logic.prepare_job("case", nodes, segmentation, CLINICAL, "G2", tiny_weights, tmp_path / "job")
    assert job.command[1:5] == ["-m", "responseai.cli", "predict", "gradeguided"] and job.missing == ["mr_t2"]
    outputs = logic.run(job)
    rows = {outputs.table.GetTable().GetValue(r, 0).ToString(): outputs.table.GetTable().GetValue(r, 1).ToString()
            for r in range(outputs.table.GetTable().GetNumberOfRows())}
    assert rows["Grade guiding the fusion"] == "G2 (biopsy)" and rows["Missing modalities"] == "mr_t2"
    assert {"P(grade G1)", "Response probability", "Subtype", "α clinical stream", "Modality importance: PET"} <= set(rows)
    heat = volume_node_to_image(outputs.spatial_map)
    assert not heat.grid_differences(volume_node_to_image(nodes["ct_nc"]))  # the reference grid
    assert 0.0 <= heat.array.min() and heat.array.max() <= 1.0
    assert outputs.spatial_map.GetDisplayNode().GetColorNode().GetName() == "ResponseAI Inferno"
    count = scene.GetNumberOfNodes()
    again = logic.import_results(job, outputs)  # a re-run updates the same nodes
    assert again.table is outputs.table and again.spatial_map is outputs.spatial_map
    assert scene.GetNumberOfNodes() == count


@pytest.mark.parametrize("problem, error", [
    ("pet_counts", "not SUV"), ("grade", "G5"), ("age", "Age"), ("no_segment", "tumour segmentation"),
    ("no_images", "at least one of CT, MRI or PET"),
])
def test_bad_input_leaves_the_scene_unchanged(slicer_app, tiny_weights, tmp_path, problem, error):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic

    from responseai.errors import ResponseAIError

    scene = slicer_app.scene
    _, nodes, segmentation = _case_nodes(scene, pet_scale=1000.0 if problem == "pet_counts" else 1.0)
    clinical = {**CLINICAL, "age": "250"} if problem == "age" else CLINICAL
    grade = "G5" if problem == "grade" else None
    if problem == "no_images":
        nodes = {name: None for name in nodes}
    before = scene.GetNumberOfNodes()
    with pytest.raises(ResponseAIError, match=error):
        GradeGuidedLogic(scene).prepare_job("bad", nodes, None if problem == "no_segment" else segmentation,
                                            clinical, grade, tiny_weights, tmp_path / "job")
    assert scene.GetNumberOfNodes() == before
    assert not (tmp_path / "job").exists()


def test_module_form_matches_the_core_schema():
    """Channels are the model's modalities; each clinical field has the core's choices + an unknown state."""
    import ast
    import xml.etree.ElementTree as ET
    from pathlib import Path

    from responseai.gradeguided.preprocess import CLINICAL_SCHEMA
    from responseai.gradeguided.phantom import GRADES, MODALITIES

    root = Path(__file__).resolve().parents[3] / "GradeGuidedFusion"
    tree = ast.parse((root / "GradeGuidedFusion.py").read_text(encoding="utf-8"))
    constants = {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and n.targets[0].id in ("VOLUME_FIELDS", "CLINICAL_FIELDS")}
    assert sorted(constants["VOLUME_FIELDS"].values()) == sorted(MODALITIES)
    assert list(constants["CLINICAL_FIELDS"]) == list(CLINICAL_SCHEMA)
    wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GradeGuidedFusionParameterNode")
    fields = {s.target.id: s for s in wrapper.body if isinstance(s, ast.AnnAssign)}
    for name, variable in CLINICAL_SCHEMA.items():
        choices = [c for c in ast.walk(fields[name].annotation) if isinstance(c, ast.List)]
        if variable.is_categorical:
            assert [e.value for e in choices[0].elts] == ["unknown", *variable.categories]
        else:
            assert not choices and fields[name].value.value == ""
    grade_choices = next(c for c in ast.walk(fields["biopsyGrade"].annotation) if isinstance(c, ast.List))
    assert [e.value for e in grade_choices.elts] == ["unknown", *GRADES]
    ui = ET.parse(root / "Resources" / "UI" / "GradeGuidedFusion.ui")
    bound = {p.findtext("string") for p in ui.iter("property") if p.get("name") == "SlicerParameterName"}
    assert set(fields) == bound


def test_results_are_refused_when_the_scene_closed_during_the_job(slicer_app, tiny_weights, tmp_path):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic
    from responseai.errors import ResponseAIError

    scene = slicer_app.scene
    _, nodes, segmentation = _case_nodes(scene)
    logic = GradeGuidedLogic(scene)
    job = logic.prepare_job("case", nodes, segmentation, CLINICAL, None, tiny_weights, tmp_path / "job")
    scene.Clear(False)
    with pytest.raises(ResponseAIError, match="no longer in the scene"):
        logic.run(job)
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == 0
