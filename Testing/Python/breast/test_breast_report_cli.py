"""`responseai predict` on DICOM series, then `responseai report`: PDF, JSON, .seg.nrrd and DICOM SEG."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom

from dicom_series import write_dicom_series
from responseai.cli import main
from responseai.io import write_image


def test_report_from_a_dicom_prediction_includes_a_dicom_seg(tmp_path: Path):
    from responseai.breast.demo import demo_case

    case = demo_case()
    for index, (name, image) in enumerate(case.phases.items()):
        write_dicom_series(image, tmp_path / name, series=f"1.2.826.0.1.3680043.8.498.{10 + index}")
    mask = write_image(case.mask, tmp_path / "mask.nrrd")
    clinical = tmp_path / "clinical.json"
    clinical.write_text(json.dumps({k: v for k, v in case.clinical.items() if v is not None}), encoding="utf-8")
    argv = ["predict", "breast", "--pre", str(tmp_path / "pre"), "--post1", str(tmp_path / "post1"), "--post2", str(tmp_path / "post2"),
            "--mask", str(mask), "--clinical", str(clinical), "--case-id", "DICOM-1", "--out", str(tmp_path / "pred")]
    assert main(argv) == 0
    assert json.loads((tmp_path / "pred" / "result.json").read_text(encoding="utf-8"))["mask_source"] == "user"

    assert main(["report", "--prediction", str(tmp_path / "pred"), "--out", str(tmp_path / "report")]) == 0
    files = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"report.pdf", "report.json", "tumour.seg.nrrd", "tumour-seg.dcm", "snapshots"} <= files
    seg = pydicom.dcmread(tmp_path / "report" / "tumour-seg.dcm")
    post1_uids = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "post1").glob("*.dcm")}
    referenced = {r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert referenced == post1_uids and seg.Modality == "SEG"


def test_bad_clinical_file_is_a_clear_error_and_writes_nothing(tmp_path: Path):
    from responseai.breast.demo import demo_case

    case = demo_case()
    paths = {name: write_image(image, tmp_path / f"{name}.nrrd") for name, image in case.phases.items()}
    clinical = tmp_path / "clinical.json"
    clinical.write_text(json.dumps({"age": 250}), encoding="utf-8")
    argv = ["predict", "breast", "--pre", str(paths["pre"]), "--post1", str(paths["post1"]), "--clinical", str(clinical),
            "--out", str(tmp_path / "pred")]
    assert main(argv) == 2
    assert not (tmp_path / "pred").exists()
