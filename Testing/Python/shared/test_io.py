"""Geometry round trips on NRRD, NIfTI and a DICOM series, and specific errors on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from responseai.errors import (
    EmptyMaskError,
    GeometryMismatchError,
    InputFileError,
    InvalidImageError,
)
from responseai.image import Image
from responseai.io import align_to_reference, read_image, resample_binary, resample_to, validate_mask, write_image

from dicom_series import write_dicom_series as _write_dicom_series


def _oblique_image(dtype=np.int16) -> Image:
    rng = np.random.default_rng(0)
    angle = np.deg2rad(23)
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    array = rng.integers(0, 1000, (6, 10, 12)).astype(dtype)
    return Image(array, (0.7, 0.9, 2.5), (-101.25, 33.5, 12.125), direction)


def _assert_same_geometry(a: Image, b: Image) -> None:
    np.testing.assert_allclose(a.spacing, b.spacing, atol=1e-6)
    np.testing.assert_allclose(a.origin, b.origin, atol=1e-6)
    np.testing.assert_allclose(a.direction, b.direction, atol=1e-6)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz"])
def test_file_round_trip_preserves_geometry(tmp_path: Path, suffix: str):
    image = _oblique_image()
    back = read_image(write_image(image, tmp_path / f"vol{suffix}"))
    assert np.array_equal(back.array, image.array)
    _assert_same_geometry(back, image)


def test_dicom_series_round_trip_preserves_geometry(tmp_path: Path):
    image = _oblique_image()
    _write_dicom_series(image, tmp_path / "series")
    back = read_image(tmp_path / "series", "pre")
    assert np.array_equal(back.array, image.array)
    _assert_same_geometry(back, image)


def test_real_ct_file_from_slicerio_reads_with_geometry():
    """A real scan shipped in a package (slicerio's CTChest4.nrrd), not only our own writer."""
    import importlib.util

    spec = importlib.util.find_spec("slicerio")
    path = Path(spec.origin).parent / "data" / "CTChest4.nrrd"
    image = read_image(path)
    assert image.shape == (34, 128, 128)
    assert image.array.min() < -500 < image.array.max()  # Hounsfield units: air and tissue
    ras = image.ijk_to_ras()
    assert np.allclose(Image.from_ijk_to_ras(image.array, ras).origin, image.origin)


def test_other_grid_is_rejected_with_the_field_or_resampled(tmp_path: Path):
    reference = _oblique_image()
    moved = Image(reference.array, (0.7, 0.9, 3.0), reference.origin, reference.direction)
    with pytest.raises(GeometryMismatchError, match=r"post2 is not on the post1 grid: spacing"):
        align_to_reference({"post1": reference, "post2": moved}, "post1")
    aligned = align_to_reference({"post1": reference, "post2": moved}, "post1", resample=True)
    assert not aligned["post2"].grid_differences(reference)
    far = Image(reference.array, reference.spacing, (900.0, 0.0, 0.0), reference.direction)
    with pytest.raises(GeometryMismatchError, match="post2: .*does not overlap"):
        align_to_reference({"post1": reference, "post2": far}, "post1", resample=True)


def _ball(shape: tuple[int, int, int], spacing: float, radius_mm: float) -> Image:
    """A ball centred in a grid whose origin puts the grid's centre at 0 mm."""
    centre = (np.array(shape) - 1) / 2
    zz, yy, xx = np.indices(shape)
    inside = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2) * spacing**2 <= radius_mm**2
    return Image(inside.astype(np.uint8), (spacing,) * 3, tuple(-centre * spacing), np.eye(3))


def test_a_coarse_mask_comes_back_closer_to_its_shape_than_by_nearest_neighbour():
    """The network's 2 mm mask on a 0.5 mm grid: the interpolated indicator cut at 0.5 rounds the staircase."""
    fine, coarse = _ball((64, 64, 64), 0.5, 9.0), _ball((16, 16, 16), 2.0, 9.0)
    back = resample_binary(coarse, fine)
    nearest = resample_to(coarse, fine, is_label=True).array > 0

    def dice(a, b):
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    assert back.array.dtype == np.uint8 and set(np.unique(back.array)) == {0, 1}
    assert dice(back.array > 0, fine.array > 0) > dice(nearest, fine.array > 0)
    np.testing.assert_array_equal(resample_binary(fine, fine).array, fine.array)  # same grid: unchanged


def test_missing_and_unreadable_files_are_named(tmp_path: Path):
    with pytest.raises(InputFileError, match=r"post2 .*does not exist"):
        read_image(tmp_path / "nope.nrrd", "post2")
    corrupt = tmp_path / "broken.nrrd"
    corrupt.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10 10\nencoding: raw\n\n\x00\x01")
    with pytest.raises(InputFileError, match=r"broken.nrrd.*cannot be read"):
        read_image(corrupt, "pre")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no DICOM series"):
        read_image(tmp_path / "empty")


def test_nan_inf_and_2d_are_rejected(tmp_path: Path):
    array = np.ones((4, 5, 6), np.float32)
    array[1, 2, 3] = np.nan
    array[0, 0, 0] = np.inf
    write_image(Image(array), tmp_path / "nan.nrrd")
    with pytest.raises(InvalidImageError, match="2 voxel"):
        read_image(tmp_path / "nan.nrrd", "post1")
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 6), np.int16)), str(tmp_path / "flat.nrrd"))
    with pytest.raises(InvalidImageError, match="3D"):
        read_image(tmp_path / "flat.nrrd", "pre")


def test_empty_and_full_masks_are_rejected():
    with pytest.raises(EmptyMaskError, match="empty"):
        validate_mask(Image(np.zeros((4, 4, 4), np.uint8)))
    with pytest.raises(EmptyMaskError, match="whole volume"):
        validate_mask(Image(np.ones((4, 4, 4), np.uint8)))


def test_seg_nrrd_round_trip_keeps_mask_and_geometry(tmp_path: Path):
    from responseai.io import read_segmentation, write_segmentation

    image = _oblique_image()
    mask = image.with_array((image.array > 700).astype(np.uint8))
    back = read_segmentation(write_segmentation(mask, tmp_path / "tumour.seg.nrrd"))
    assert np.array_equal(back.array, mask.array)
    _assert_same_geometry(back, mask)
    with pytest.raises(InputFileError, match="no segment named 'Liver'"):
        read_segmentation(tmp_path / "tumour.seg.nrrd", "Liver")


def test_a_mask_file_with_one_segment_of_another_name_is_the_tumour(tmp_path: Path):
    """The runner-up candidate the breast job writes (or a segment the user renamed) is usable as ``--mask``."""
    from responseai.io import read_mask, read_segmentation, write_segmentation

    image = _oblique_image()
    mask = image.with_array((image.array > 700).astype(np.uint8))
    path = write_segmentation(mask, tmp_path / "runner-up.seg.nrrd", "Runner-up candidate")
    assert np.array_equal(read_mask(path).array, mask.array)
    with pytest.raises(InputFileError, match="no segment named 'Tumour'"):  # asked by name: still strict
        read_segmentation(path)


def test_dicom_seg_export_references_the_source_series(tmp_path: Path):
    import highdicom as hd
    import pydicom

    from responseai.dicom_seg import write_dicom_seg

    image = _oblique_image()
    _write_dicom_series(image, tmp_path / "series")
    volume = read_image(tmp_path / "series")
    mask = volume.with_array((volume.array > 800).astype(np.uint8))
    path = write_dicom_seg(mask, tmp_path / "series", tmp_path / "tumour-seg.dcm")
    seg = hd.seg.segread(path)
    source_uids = {pydicom.dcmread(p).SOPInstanceUID for p in (tmp_path / "series").glob("*.dcm")}
    referenced = {r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert referenced == source_uids
    assert seg.get_segment_description(1).SegmentLabel == "Tumour"
    assert int(seg.pixel_array.sum()) == int(mask.array.sum())
    with pytest.raises(GeometryMismatchError, match="does not match the DICOM series"):
        write_dicom_seg(Image(mask.array[:-1], mask.spacing, mask.origin, mask.direction),
                        tmp_path / "series", tmp_path / "bad.dcm")


def test_without_highdicom_the_seg_export_says_why_and_the_report_keeps_the_rest(tmp_path: Path, monkeypatch):
    """Slicer 5.10 (pydicom 2.4 + numpy 2) has no usable highdicom: a clear note, not a failed export."""
    import sys

    from responseai.breast.report import _write_dicom_seg
    from responseai.dicom_seg import DicomSegUnavailableError, write_dicom_seg

    image = _oblique_image()
    _write_dicom_series(image, tmp_path / "series")
    volume = read_image(tmp_path / "series")
    mask = volume.with_array((volume.array > 800).astype(np.uint8))
    monkeypatch.setitem(sys.modules, "highdicom", None)  # `import highdicom` now fails, as without the package
    with pytest.raises(DicomSegUnavailableError, match="needs pydicom 3.*tumour.seg.nrrd"):
        write_dicom_seg(mask, tmp_path / "series", tmp_path / "seg.dcm")
    staging = tmp_path / "staging"
    staging.mkdir()
    _write_dicom_seg(mask, tmp_path / "series", staging)
    assert [p.name for p in staging.iterdir()] == ["DICOM-SEG-NOT-WRITTEN.txt"]


def test_volumes_in_ml_come_from_the_grid_spacing():
    image = Image(np.zeros((4, 5, 6), np.uint8), spacing=(0.5, 2.0, 3.0))
    assert image.voxel_volume_ml == pytest.approx(0.003)
    mask = np.zeros(image.shape, bool)
    mask[1:3, 2, :] = True  # 12 voxels
    assert image.volume_ml(mask) == pytest.approx(0.036)
    assert image.volume_ml() == 0.0 and image.with_array(mask.astype(np.uint8)).volume_ml() == pytest.approx(0.036)


def test_a_folder_of_several_series_names_each_so_the_user_can_pick(tmp_path: Path):
    """A study exported into one folder (a phase and, say, its subtraction): refused, listing every series."""
    image = _oblique_image()
    _write_dicom_series(image, tmp_path / "study", series="1.2.826.0.1.3680043.8.498.31",
                        tags={"0020|0011": "7", "0008|103e": "ax dyn pre"})
    _write_dicom_series(image, tmp_path / "study", series="1.2.826.0.1.3680043.8.498.32",
                        tags={"0020|0011": "12", "0008|103e": "ax sub 1"}, frame=1)
    with pytest.raises(InputFileError, match=r'2 DICOM series in one folder \(7 "ax dyn pre", 6 files; 12 "ax sub 1", '
                                             r'6 files\): give the folder of one series'):
        read_image(tmp_path / "study", "pre")
