"""A dynamic (DCE) series given as one input: 4D NIfTI, a Slicer sequence NRRD, a DICOM series with repeated
slices; the frames split with their geometry and times, the pre / early / late choice, and the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from dicom_series import write_dicom_series
from responseai.dynamic import DynamicSeries, choose_frames, parse_frames, read_dynamic
from responseai.errors import InputFileError, InvalidImageError
from responseai.image import GEOMETRY_TOLERANCE, Image
from responseai.io import read_image, to_sitk

TIMES = (0.0, 75.0, 150.0, 360.0)  # a 4-frame clinical protocol: pre, two early frames, one late


def _frames(n: int = 4) -> list[Image]:
    rng = np.random.default_rng(3)
    angle = np.deg2rad(19)
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    return [Image(rng.integers(0, 500, (5, 7, 9)).astype(np.int16) + 100 * k, (0.8, 0.9, 2.5), (-40.5, 12.0, 7.25),
                  direction) for k in range(n)]


def _same(a: Image, b: Image, atol: float = 1e-5) -> None:
    assert np.array_equal(a.array, b.array)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=atol)
    np.testing.assert_allclose(a.origin, b.origin, atol=atol)
    np.testing.assert_allclose(a.direction, b.direction, atol=atol)


def _tm(seconds: float) -> str:
    """DICOM TM of 14:59:00 + seconds (the series crosses 15:00)."""
    total = 14 * 3600 + 59 * 60 + seconds
    return f"{int(total // 3600):02d}{int(total % 3600 // 60):02d}{total % 60:09.6f}"


def _dynamic_dicom(folder: Path, frames: list[Image], tags=lambda k: {}) -> None:
    for k, frame in enumerate(frames):
        write_dicom_series(frame, folder, tags=tags(k), frame=k)


def test_a_4d_nifti_splits_into_frames_with_the_3d_geometry(tmp_path: Path):
    frames = _frames()
    sitk.WriteImage(sitk.JoinSeries([to_sitk(f) for f in frames]), str(tmp_path / "dce.nii.gz"))
    series = read_dynamic(tmp_path / "dce.nii.gz")
    assert len(series.frames) == 4 and series.times_s is None and series.files is None
    for back, frame in zip(series.frames, frames):
        _same(back, frame)
    choice = choose_frames(series)
    assert choice.indices == {"pre": 0, "post1": 1, "post2": 3} and "without acquisition times" in choice.reason


def test_a_slicer_sequence_nrrd_keeps_its_frame_times(tmp_path: Path):
    frames = _frames()
    vector = sitk.Compose([to_sitk(f) for f in frames])
    vector.SetMetaData("axis 0 index values", " ".join(f"{t:g}" for t in TIMES))
    vector.SetMetaData("axis 0 index unit", "s")
    sitk.WriteImage(vector, str(tmp_path / "dce.seq.nrrd"))
    series = read_dynamic(tmp_path / "dce.seq.nrrd")
    _same(series.frames[2], frames[2])
    assert series.times_s == TIMES
    assert choose_frames(series).indices == {"pre": 0, "post1": 2, "post2": 3}


def test_a_dynamic_dicom_series_splits_by_temporal_position_with_times(tmp_path: Path):
    frames = _frames()
    _dynamic_dicom(tmp_path / "dyn", frames,
                   lambda k: {"0020|0100": str(k + 1), "0008|0032": _tm(TIMES[k]), "0020|0105": "4"})
    series = read_dynamic(tmp_path / "dyn")
    assert series.times_s == TIMES  # across 15:00, from AcquisitionTime
    for back, frame in zip(series.frames, frames):
        _same(back, frame)
    assert [len(files) for files in series.files] == [5] * 4
    choice = choose_frames(series)
    assert choice.indices == {"pre": 0, "post1": 2, "post2": 3}  # 150 s is nearer 120 s than 75 s
    assert choice.sources(series)["post1"].endswith("[frame 2, 150 s]")
    # without TemporalPositionIdentifier, the acquisition time tells the frames apart
    _dynamic_dicom(tmp_path / "dyn2", frames, lambda k: {"0008|0032": _tm(TIMES[k])})
    assert read_dynamic(tmp_path / "dyn2").times_s == TIMES


def test_single_volume_readers_refuse_a_dynamic_series_and_say_what_to_do(tmp_path: Path):
    frames = _frames(3)
    sitk.WriteImage(sitk.JoinSeries([to_sitk(f) for f in frames]), str(tmp_path / "dce.nii.gz"))
    with pytest.raises(InvalidImageError, match="holds 3 frames.*--dce"):
        read_image(tmp_path / "dce.nii.gz", "pre")
    _dynamic_dicom(tmp_path / "dyn", frames, lambda k: {"0020|0100": str(k + 1)})
    with pytest.raises(InputFileError, match="repeats its slice positions.*15 files at 5 positions.*--dce"):
        read_image(tmp_path / "dyn", "pre")
    # no attribute tells the frames apart: refused, not read as one interleaved volume
    _dynamic_dicom(tmp_path / "bare", frames)
    with pytest.raises(InputFileError, match="none of TemporalPositionIdentifier.*export each phase"):
        read_dynamic(tmp_path / "bare")


def test_a_single_frame_and_bad_frame_choices_are_refused(tmp_path: Path):
    frame = _frames(1)[0]
    sitk.WriteImage(to_sitk(frame), str(tmp_path / "one.nrrd"))
    with pytest.raises(InvalidImageError, match="single frame"):
        read_dynamic(tmp_path / "one.nrrd")
    series = DynamicSeries(tuple(_frames()), None, "dce")
    assert choose_frames(series, parse_frames("0,2,3")).indices == {"pre": 0, "post1": 2, "post2": 3}
    assert choose_frames(series, parse_frames("pre=1, post1=2")).indices == {"pre": 1, "post1": 2}
    for text, message in [("0,7", "do not exist; the series has frames 0–3"), ("2,1", "acquisition order"),
                          ("1,1", "distinct")]:
        with pytest.raises(InvalidImageError, match=message):
            choose_frames(series, parse_frames(text))
    for text in ("a,b", "0", "0,1,2,3", "pre=0,late=2"):
        with pytest.raises(InvalidImageError, match="frames"):
            parse_frames(text)
    assert parse_frames("") is None and parse_frames(None) is None


def test_times_choose_the_early_frame_and_say_when_the_late_one_is_early():
    frames = tuple(_frames(6))
    ultrafast = DynamicSeries(frames, (0.0, 10.0, 20.0, 30.0, 125.0, 200.0), "dce")
    choice = choose_frames(ultrafast)
    assert choice.indices == {"pre": 0, "post1": 4, "post2": 5} and "washout may not show" in choice.reason
    two = DynamicSeries(frames[:2], (0.0, 90.0), "dce")
    assert choose_frames(two).indices == {"pre": 0, "post1": 1}
    many = DynamicSeries(frames + frames[:2], None, "dce")  # 8 frames, no times: an ultrafast series?
    assert "frame 1 may come seconds after the injection" in choose_frames(many).reason
    assert "may come" not in choose_frames(DynamicSeries(frames, None, "dce")).reason


def _enhanced_mr(path: Path, frames: list[Image], starts: list[str] | None = None) -> None:
    """An Enhanced MR file as newer scanners export a DCE series: every slice of every time point one frame, stored
    slice-major (all time points of slice 0, then slice 1 …), geometry in the functional groups."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence as DicomSequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def item(**sequences) -> pydicom.Dataset:
        group = pydicom.Dataset()
        for name, values in sequences.items():
            inner = pydicom.Dataset()
            for key, value in values.items():
                setattr(inner, key, value)
            setattr(group, name, DicomSequence([inner]))
        return group

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "MR"
    first = frames[0]
    depth, ds.Rows, ds.Columns = first.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    direction = first.direction
    ds.SharedFunctionalGroupsSequence = DicomSequence([item(
        PixelMeasuresSequence={"PixelSpacing": [first.spacing[1], first.spacing[0]], "SliceThickness": first.spacing[2]},
        PlaneOrientationSequence={"ImageOrientationPatient": [*direction[:, 0], *direction[:, 1]]})])
    per_frame, pixels = [], []
    for z in range(depth):
        position = list(np.asarray(first.origin) + z * first.spacing[2] * direction[:, 2])
        for t, frame in enumerate(frames):
            content = {"TemporalPositionIndex": t + 1, **({"FrameAcquisitionDateTime": starts[t]} if starts else {})}
            per_frame.append(item(PlanePositionSequence={"ImagePositionPatient": position}, FrameContentSequence=content))
            pixels.append(frame.array[z].astype(np.uint16))
    ds.NumberOfFrames = len(per_frame)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.stack(pixels).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_an_enhanced_multiframe_dynamic_series_splits_into_its_time_points(tmp_path: Path):
    """GDCM reads its 20 frames as one volume of 20 slices (time stacked along z): the single-volume reader refuses it
    and says to give it as the DCE series, which splits it — voxels, oblique geometry and frame times exact."""
    frames = _frames()
    starts = ["20261203145900", "20261203150015", "20261203150130.5", "20261203150500"]
    _enhanced_mr(tmp_path / "enhanced" / "dce.dcm", frames, starts)
    with pytest.raises(InputFileError, match=r"enhanced multi-frame DICOM repeats its slice positions \(20 frames at 5 "
                                             r"positions\).*--dce"):
        read_image(tmp_path / "enhanced", "pre")
    series = read_dynamic(tmp_path / "enhanced")
    assert len(series.frames) == 4 and series.times_s == (0.0, 75.0, 150.5, 360.0) and series.files is None
    for back, frame in zip(series.frames, frames):
        _same(back, frame, atol=GEOMETRY_TOLERANCE)  # positions as DICOM decimal strings: ~6 significant digits
    assert choose_frames(series).indices == {"pre": 0, "post1": 2, "post2": 3}


def test_an_enhanced_file_that_cannot_be_placed_is_refused_clearly(tmp_path: Path):
    import pydicom

    _enhanced_mr(tmp_path / "enhanced" / "dce.dcm", _frames(2))
    ds = pydicom.dcmread(tmp_path / "enhanced" / "dce.dcm")
    del ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence
    ds.save_as(tmp_path / "enhanced" / "dce.dcm")
    with pytest.raises(InputFileError, match="cannot be read as a series|states no orientation"):  # GDCM or ours
        read_dynamic(tmp_path / "enhanced")
    with pytest.raises(InputFileError, match="cannot be read as a series|states no orientation"):
        read_image(tmp_path / "enhanced", "pre")
