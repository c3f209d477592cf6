"""Results in the scene (heatmap and table nodes, reused on re-run) and the per-patient report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import vtk

from attention_stub import gaussian_attention
from responseai.errors import GeometryMismatchError
from responseai.image import Image

ROOT = Path(__file__).resolve().parents[3]


def _ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.fixture(scope="module")
def demo():
    from responseai.breast.demo import demo_case

    return demo_case()


@pytest.fixture()
def scene_case(slicer_app, demo):
    from responseai.slicer_bridge.nodes import add_volume_node

    return slicer_app.scene, add_volume_node(slicer_app.scene, demo.phases["post1"], "post1"), demo


def test_heatmap_node_is_on_the_reference_grid_in_0_1_with_a_colour_map(scene_case):
    from responseai.slicer_bridge.nodes import volume_node_to_image
    from responseai.slicer_bridge.outputs import HEATMAP_LOWER_THRESHOLD, add_heatmap_node

    scene, reference, case = scene_case
    raw = gaussian_attention(case.mask).array * 1.6 - 0.3  # out of range on purpose
    node = add_heatmap_node(scene, case.mask.with_array(raw), "attention", reference)

    np.testing.assert_allclose(_ijk_to_ras(node), _ijk_to_ras(reference), atol=1e-9)
    values = volume_node_to_image(node).array
    assert values.min() == 0.0 and values.max() == 1.0
    display = node.GetDisplayNode()
    assert display.GetColorNode() is not None and "Inferno" in display.GetColorNode().GetName()
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindow(), display.GetLevel()) == pytest.approx((1.0, 0.5))
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(HEATMAP_LOWER_THRESHOLD)


def test_heatmap_off_the_reference_grid_is_refused(scene_case):
    from responseai.slicer_bridge.outputs import add_heatmap_node

    scene, reference, case = scene_case
    shifted = Image(gaussian_attention(case.mask).array, case.mask.spacing, (0.0, 0.0, 0.0))
    with pytest.raises(GeometryMismatchError, match="origin"):
        add_heatmap_node(scene, shifted, "attention", reference)


def test_rerun_updates_heatmap_and_table_in_place(scene_case):
    from responseai.slicer_bridge.nodes import volume_node_to_image
    from responseai.slicer_bridge.outputs import set_heatmap, set_results_table, table_rows

    scene, reference, case = scene_case
    attention = gaussian_attention(case.mask)
    heatmap = set_heatmap(scene, attention, "attention", None, reference)
    table = set_results_table(scene, {"pCR probability": 0.41234, "Pointing game hit": True,
                                      "Missing clinical": []}, "results")
    assert table_rows(table) == {"pCR probability": "0.412", "Pointing game hit": "yes", "Missing clinical": "none"}
    counts = scene.GetNumberOfNodes()

    again = set_heatmap(scene, attention.with_array(attention.array * 0.5), "attention", heatmap, reference)
    table_again = set_results_table(scene, {"pCR probability": 0.2}, "results", table)
    assert again is heatmap and table_again is table and scene.GetNumberOfNodes() == counts
    assert volume_node_to_image(heatmap).array.max() == pytest.approx(attention.array.max() * 0.5, abs=1e-6)
    assert table_rows(table) == {"pCR probability": "0.200"}
    assert table.GetTable().GetNumberOfColumns() == 2


def test_show_overlay_is_a_no_op_without_slice_views(scene_case):
    from responseai.slicer_bridge.outputs import add_heatmap_node, show_overlay

    scene, reference, case = scene_case
    assert show_overlay(reference, add_heatmap_node(scene, gaussian_attention(case.mask), "a", reference)) == 0


@pytest.fixture(scope="module")
def record(demo) -> dict:
    """A prediction record as ``result.json`` holds it, plus the shipped model card."""
    card = json.loads((ROOT / "Resources" / "Models" / "breast_pcr.json").read_text(encoding="utf-8"))
    return {"case_id": demo.patient_id, "pcr_probability": 0.3721, "predicted_class": "pCR", "threshold": 0.3043,
            "attention_in_mask": 0.873, "pointing_game_hit": True, "mask_source": "model",
            "clinical_used": {**demo.clinical, "ki67": None}, "missing_clinical": ["ki67"],
            "inputs": {"pre": "input/pre.nrrd", "post1": "input/post1.nrrd", "post2": "input/post2.nrrd"},
            "model_card": card, "created": "2026-11-23T10:00:00+00:00"}


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    folder = tmp_path_factory.mktemp("snaps")
    paths = {}
    for key in ("axial", "sagittal", "coronal"):
        paths[key] = folder / f"{key}.png"
        plt.imsave(paths[key], np.random.default_rng(0).random((64, 64)), cmap="gray")
    return paths


def test_report_pdf_and_json(record, snapshots, tmp_path: Path):
    from pypdf import PdfReader

    from responseai.breast.report import build_report
    from responseai.reports import validate_report, write_report

    files = write_report(build_report(record), snapshots, tmp_path / "report")
    text = " ".join(page.extract_text() for page in PdfReader(files["pdf"]).pages)
    for expected in (record["case_id"], "0.372", "pCR probability", "RESEARCH USE ONLY", "Ki-67",
                     "Pointing game", record["model_card"]["sha256"][:16], "AUC"):
        assert expected in text, expected
    report = json.loads(files["json"].read_text(encoding="utf-8"))
    validate_report(report)
    assert report["data"]["pcr_probability"] == pytest.approx(0.3721)
    assert [image["file"] for image in report["images"]] == [f"snapshots/{k}.png" for k in snapshots]
    assert all((tmp_path / "report" / image["file"]).is_file() for image in report["images"])


def test_invalid_report_fails_schema_and_writes_nothing(record, snapshots, tmp_path: Path):
    from responseai.breast.report import build_report
    from responseai.reports import write_report
    from responseai.reports.writer import ReportError

    report = build_report(record)
    report["data"]["pcr_probability"] = 1.7
    with pytest.raises(ReportError, match="data/pcr_probability"):
        write_report(report, snapshots, tmp_path / "bad")
    broken = build_report(record)
    with pytest.raises(FileNotFoundError):
        write_report(broken, {**snapshots, "axial": tmp_path / "missing.png"}, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []
