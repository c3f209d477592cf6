"""GradeGuidedFusion report: from a real prediction folder (CLI) and from the Logic on a headless scene."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from responseai.io import write_image
from responseai.gradeguided.phantom import generate_case


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    from test_gradeguided_inference import train_tiny_model

    return train_tiny_model(tmp_path_factory.mktemp("gg-report"))


@pytest.fixture(scope="module")
def prediction(tiny_weights, tmp_path_factory) -> Path:
    """``responseai predict gradeguided`` on a phantom case with MRI T2 missing: a real result folder."""
    from responseai.gradeguided.inference import main

    case = generate_case(5, 2)
    folder = tmp_path_factory.mktemp("gg-pred")
    args = []
    for name, option in (("ct_nc", "--ct-nc"), ("ct_art", "--ct-art"), ("mr_t1", "--mri-t1"), ("pet", "--pet")):
        args += [option, str(write_image(case.images[name], folder / "in" / f"{name}.nrrd"))]
    args += ["--mask", str(write_image(case.mask, folder / "in" / "mask.nrrd")), "--clinical", '{"age": 58}',
             "--case-id", "GG-007", "--weights", str(tiny_weights), "--out", str(folder / "out")]
    assert main(args) == 0
    return folder / "out"


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return " ".join(page.extract_text() for page in PdfReader(path).pages)


def test_cli_report_from_a_gradeguided_prediction(prediction, tmp_path):
    from responseai.cli import main
    from responseai.reports import validate_report

    record = json.loads((prediction / "result.json").read_text(encoding="utf-8"))
    assert (prediction / "model_card.json").is_file() and record["case_id"] == "GG-007"
    assert main(["report", "--prediction", str(prediction), "--out", str(tmp_path / "report")]) == 0
    text = _pdf_text(tmp_path / "report" / "report.pdf")
    for expected in ("GG-007", f"{record['response_probability']:.3f}", "RESEARCH USE ONLY", "Modality importance",
                     "CT non-contrast", "MRI T2", "subtype-sensitivity map"):
        assert expected in text, expected
    report = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    validate_report(report)
    assert report["report_type"] == "gradeguided"
    assert report["data"]["modality_importance"] == record["modality_importance"]
    assert len(report["images"]) == 3
    assert all((tmp_path / "report" / image["file"]).is_file() for image in report["images"])


def test_report_that_breaks_the_schema_is_refused(prediction, tmp_path):
    from responseai.gradeguided.report import build_gradeguided_report
    from responseai.reports.writer import ReportError, write_report

    record = json.loads((prediction / "result.json").read_text(encoding="utf-8"))
    report = build_gradeguided_report(record, {})  # no card: the summary says so, sha256 is null
    assert report["data"]["model"]["sha256"] is None
    report["data"]["modality_importance"] = {"ultrasound": 1.0}
    with pytest.raises(ReportError, match="modality_importance"):
        write_report(report, {}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_logic_export_writes_pdf_and_json(slicer_app, tiny_weights, tmp_path):
    from GradeGuidedFusionLib.logic import GradeGuidedLogic, export_report
    from test_gradeguided_logic import CLINICAL, _case_nodes

    _, nodes, segmentation = _case_nodes(slicer_app.scene)
    logic = GradeGuidedLogic(slicer_app.scene)
    job = logic.prepare_job("scene-case", nodes, segmentation, CLINICAL, None, tiny_weights, tmp_path / "job")
    outputs = logic.run(job)
    files = export_report(outputs, tmp_path / "report", {})
    assert files["pdf"].is_file() and files["json"].is_file()
    report = json.loads(files["json"].read_text(encoding="utf-8"))
    assert report["case_id"] == "scene-case" and report["data"]["model"]["sha256"] == outputs.card["sha256"]
    assert "scene-case" in _pdf_text(files["pdf"])
