"""`responseai predict` on DICOM series, then `responseai report`: PDF, JSON, .seg.nrrd and DICOM SEG."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest

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


def test_one_dynamic_dicom_series_predicts_as_its_phases_and_reports_on_its_early_frame(tmp_path: Path):
    """A DCE exam as scanners export it (one series, slices repeated per time point, a frame with no contrast
    yet taken as a decoy early frame): the chosen frames give the same pCR number as the phases given one by one,
    result.json says which frames, and the DICOM SEG references the early frame's own instances."""
    from responseai.breast.demo import demo_case

    case = demo_case()
    frames = [case.phases["pre"], case.phases["pre"], case.phases["post1"], case.phases["post2"]]
    times = ("150000", "150030", "150200", "150700")  # pre, 30 s (before the bolus), 120 s, 7 min
    for k, frame in enumerate(frames):
        write_dicom_series(frame, tmp_path / "dce", series="1.2.826.0.1.3680043.8.498.20",
                           tags={"0020|0100": str(k + 1), "0008|0032": times[k]}, frame=k)
    mask = write_image(case.mask, tmp_path / "mask.nrrd")
    clinical = tmp_path / "clinical.json"
    clinical.write_text(json.dumps({k: v for k, v in case.clinical.items() if v is not None}), encoding="utf-8")
    common = ["--mask", str(mask), "--clinical", str(clinical), "--case-id", "DCE-1"]
    assert main(["predict", "breast", "--dce", str(tmp_path / "dce"), *common, "--out", str(tmp_path / "dyn")]) == 0
    paths = {name: write_image(image, tmp_path / f"{name}.nrrd") for name, image in case.phases.items()}
    assert main(["predict", "breast", *(i for n, p in paths.items() for i in (f"--{n}", str(p))), *common,
                 "--out", str(tmp_path / "phases")]) == 0
    dynamic = json.loads((tmp_path / "dyn" / "result.json").read_text(encoding="utf-8"))
    phases = json.loads((tmp_path / "phases" / "result.json").read_text(encoding="utf-8"))
    assert dynamic["dce_series"]["frames"] == {"pre": 0, "post1": 2, "post2": 3}
    assert dynamic["dce_series"]["times_s"] == [0.0, 30.0, 120.0, 420.0]
    assert dynamic["inputs"]["post1"].endswith("[frame 2, 120 s]")
    assert dynamic["pcr_probability"] == pytest.approx(phases["pcr_probability"], abs=1e-4)

    assert main(["report", "--prediction", str(tmp_path / "dyn"), "--out", str(tmp_path / "report")]) == 0
    inputs = dict(json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))["sections"][0]["rows"])
    assert inputs["Frames of the DCE series"].startswith("4 frames: frame 0 pre-contrast, frame 2 (120 s)")
    seg = pydicom.dcmread(tmp_path / "report" / "tumour-seg.dcm")
    early = {d.SOPInstanceUID for d in map(pydicom.dcmread, (tmp_path / "dce").glob("*.dcm")) if d.TemporalPositionIdentifier == 3}
    referenced = {r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert referenced == early


def test_dynamic_and_phase_inputs_together_or_frames_alone_are_refused(tmp_path: Path, caplog):
    from responseai.breast.demo import demo_case

    case = demo_case()
    pre = write_image(case.phases["pre"], tmp_path / "pre.nrrd")
    with pytest.raises(SystemExit):
        main(["predict", "breast", "--post1", str(pre), "--out", str(tmp_path / "a")])
    assert main(["predict", "breast", "--pre", str(pre), "--post1", str(pre), "--dce-frames", "0,1",
                 "--out", str(tmp_path / "b")]) == 2
    assert "without a DCE series" in caplog.text
    assert main(["predict", "breast", "--pre", str(pre), "--dce", str(pre), "--out", str(tmp_path / "c")]) == 2
    assert "give one or the other" in caplog.text
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_cohort_of_dynamic_series_says_which_frames_each_row_read(tmp_path: Path):
    """`predict breast --manifest` with `dce` rows (one auto-chosen, one with `dce_frames`): each row's frames in the
    cohort table, and the rows' numbers differ as their early frames do."""
    import pandas as pd
    import SimpleITK as sitk

    from responseai.breast.demo import demo_case
    from responseai.io import to_sitk

    case = demo_case()
    sitk.WriteImage(sitk.JoinSeries([to_sitk(case.phases[p]) for p in ("pre", "post1", "post2")]),
                    str(tmp_path / "dce.nii.gz"))
    write_image(case.mask, tmp_path / "mask.nrrd")
    (tmp_path / "manifest.csv").write_text("patient_id,dce,dce_frames,mask,age\nD1,dce.nii.gz,,mask.nrrd,50\n"
                                           'D2,dce.nii.gz,"0,2",mask.nrrd,50\n', encoding="utf-8")
    assert main(["predict", "breast", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "out"),
                 "--workers", "1"]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("case_id")
    assert table.loc["D1", "dce_frames_used"] == "0,1,2" and table.loc["D2", "dce_frames_used"] == "0,2"
    assert table.loc["D1", "pcr_probability"] != table.loc["D2", "pcr_probability"]
