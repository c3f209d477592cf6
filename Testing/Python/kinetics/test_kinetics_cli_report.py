"""`responseai predict kinetics` → result.json + NRRD maps (atomically); `responseai report` → PDF + JSON + pictures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from responseai.cli import main
from responseai.io import read_image, write_image
from responseai.kinetics.constants import PHASES


@pytest.fixture(scope="module")
def case_files(tmp_path_factory, kinetics_case) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("kinetics-case")
    files = {name: write_image(image, folder / f"{name}.nrrd") for name, image in kinetics_case.baseline.phases.items()}
    files.update({f"followup-{n}": write_image(im, folder / f"followup_{n}.nrrd")
                  for n, im in kinetics_case.followup.phases.items()})
    files["mask"] = write_image(kinetics_case.baseline.mask, folder / "mask.nrrd")
    files["followup-mask"] = write_image(kinetics_case.followup.mask, folder / "followup_mask.nrrd")
    return {name: str(path) for name, path in files.items()}


def _argv(files: dict[str, str], names) -> list[str]:
    return [a for name in names for a in (f"--{name}", files[name])]


def test_predict_then_report(case_files, kinetics_case, tmp_path: Path):
    out = tmp_path / "prediction"
    names = [*PHASES, "mask", *(f"followup-{p}" for p in PHASES), "followup-mask"]
    argv = ["predict", "kinetics", *_argv(case_files, names), "--patient-id", "P1", "--followup-patient-id", "P1",
            "--config", '{"pe_threshold": 70}', "--out", str(out)]
    assert main(argv) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["family"] == "kinetics" and record["case_id"] == "P1"
    assert record["baseline"]["majority_class"] == "washout" and record["followup_roi_source"] == "given"
    assert record["changes"]["delta_ftv_percent"] == pytest.approx(kinetics_case.truth["true_delta_ftv_percent"], rel=0.1)
    assert {"pe.nrrd", "ser.nrrd", "kinetic_class.nrrd", "followup_pe.nrrd", "followup_kinetic_class.nrrd",
            "followup_to_baseline.tfm"} <= {p.name for p in out.iterdir()}
    classes = read_image(out / "kinetic_class.nrrd")
    assert classes.array.dtype == np.uint8 and set(np.unique(classes.array)) <= {0, 1, 2, 3}
    assert not classes.grid_differences(kinetics_case.baseline.phases["post1"])

    report = tmp_path / "report"
    assert main(["report", "--prediction", str(out), "--out", str(report)]) == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data["report_type"] == "kinetics" and data["headline"]["label"] == "ΔFTV"
    assert [image["key"] for image in data["images"]] == ["baseline_map", "followup_map", "curves"]
    assert "washout" in data["image_legend"] and (report / "report.pdf").stat().st_size > 10_000
    titles = [section["title"] for section in data["sections"]]
    assert titles[:3] == ["Inputs", "Thresholds", "Baseline"] and "Change baseline → follow-up" in titles


def test_a_bad_input_writes_nothing(case_files, kinetics_case, tmp_path: Path, caplog):
    empty = write_image(kinetics_case.baseline.mask.with_array(np.zeros(kinetics_case.baseline.mask.shape, np.uint8)),
                        tmp_path / "empty.nrrd")
    out = tmp_path / "prediction"
    assert main(["predict", "kinetics", *_argv(case_files, PHASES), "--mask", str(empty), "--out", str(out)]) == 2
    assert "the mask is empty" in caplog.text and not out.exists()
    assert main(["predict", "kinetics", *_argv(case_files, ["pre", "mask"]), "--out", str(out)]) == 2
    assert "missing: post1, post2" in caplog.text and not out.exists()


def test_baseline_only(case_files, tmp_path: Path):
    out, report = tmp_path / "prediction", tmp_path / "report"
    assert main(["predict", "kinetics", *_argv(case_files, [*PHASES, "mask"]), "--pe-threshold", "80",
                 "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["followup"] is None and record["config"]["pe_threshold"] == 80
    assert not (out / "followup_pe.nrrd").exists()
    assert main(["report", "kinetics", "--prediction", str(out), "--out", str(report)]) == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data["headline"]["label"] == "Baseline FTV" and [i["key"] for i in data["images"]] == ["baseline_map", "curves"]


def test_dynamic_series_give_the_same_kinetics_as_the_phases(case_files, kinetics_case, tmp_path: Path):
    """Baseline as one dynamic DICOM series (times: the frame nearest 120 s is the early one, a 40-s frame before it
    is skipped; the curve plot takes the frames' own times), follow-up as one Slicer sequence NRRD at other times: the
    same kinetics as the phase files, and the report reads its pictures from the series' frames."""
    import SimpleITK as sitk

    from dicom_series import write_dicom_series
    from responseai.io import to_sitk

    baseline = {p: im.with_array(np.round(im.array).astype(np.int16)) for p, im in kinetics_case.baseline.phases.items()}
    frames = [baseline["pre"], baseline["pre"], baseline["post1"], baseline["post2"]]  # scanner units (int16)
    for k, (frame, time) in enumerate(zip(frames, ("100000", "100040", "100150", "100620"))):
        write_dicom_series(frame, tmp_path / "baseline", tags={"0020|0100": str(k + 1), "0008|0032": time}, frame=k)
    followup = sitk.Compose([to_sitk(kinetics_case.followup.phases[p]) for p in PHASES])
    followup.SetMetaData("axis 0 index values", "0 95 400")  # another protocol's times than the baseline's
    followup.SetMetaData("axis 0 index unit", "s")
    sitk.WriteImage(followup, str(tmp_path / "followup.seq.nrrd"))
    common = [*_argv(case_files, ["mask", "followup-mask"]), "--patient-id", "P1", "--followup-patient-id", "P1",
              "--resample"]  # a left-handed grid comes back right-handed from DICOM: the ROI is resampled onto it
    dynamic, phases = tmp_path / "dynamic", tmp_path / "phases"
    assert main(["predict", "kinetics", "--dce", str(tmp_path / "baseline"),
                 "--followup-dce", str(tmp_path / "followup.seq.nrrd"), *common, "--out", str(dynamic)]) == 0
    names = [*PHASES, *(f"followup-{p}" for p in PHASES)]
    assert main(["predict", "kinetics", *_argv(case_files, names), *common, "--out", str(phases)]) == 0
    got, want = (json.loads((d / "result.json").read_text(encoding="utf-8")) for d in (dynamic, phases))
    assert got["dce_series"]["baseline"]["frames"] == {"pre": 0, "post1": 2, "post2": 3}
    assert got["dce_series"]["followup"]["frames"] == {"pre": 0, "post1": 1, "post2": 2}
    assert got["dce_series"]["baseline"]["times_s"] == [0.0, 40.0, 110.0, 380.0]
    assert got["config"]["phase_times_s"] == [0.0, 110.0, 380.0]  # the plot at the chosen frames' own times
    assert got["config"]["followup_phase_times_s"] == [0.0, 95.0, 400.0]  # the follow-up at its own, not the baseline's
    assert want["config"]["phase_times_s"] == want["config"]["followup_phase_times_s"] == [0.0, 120.0, 420.0]  # nominal
    assert got["baseline"]["ftv_ml"] == pytest.approx(want["baseline"]["ftv_ml"], rel=0.02)
    assert got["baseline"]["majority_class"] == want["baseline"]["majority_class"]
    assert got["changes"]["delta_ftv_percent"] == pytest.approx(want["changes"]["delta_ftv_percent"], abs=2.0)
    assert main(["report", "--prediction", str(dynamic), "--out", str(tmp_path / "report")]) == 0
    data = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert [image["key"] for image in data["images"]] == ["baseline_map", "followup_map", "curves"]
