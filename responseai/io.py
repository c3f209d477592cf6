"""Reading and writing volumes (NRRD, NIfTI, DICOM series) with their geometry.

SimpleITK does the parsing: it already knows the DICOM, NRRD and NIfTI geometry rules
(LPS, qform/sform, slice ordering), so nothing here re-implements a file format. What this
module adds is the product's contract: every image is 3D, finite, and comes back as an
:class:`~responseai.image.Image`; every failure names the file and the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from responseai.errors import (
    EmptyMaskError,
    GeometryMismatchError,
    InputFileError,
    InvalidImageError,
)
from responseai.image import Image

log = logging.getLogger(__name__)

TUMOUR_SEGMENT = "Tumour"  # the segment name every family reads and writes
IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def to_sitk(image: Image) -> sitk.Image:
    """Convert to a SimpleITK image (array order z, y, x; geometry x, y, z)."""
    out = sitk.GetImageFromArray(image.array, isVector=image.array.ndim == 4)
    out.SetSpacing(image.spacing)
    out.SetOrigin(image.origin)
    out.SetDirection(tuple(image.direction.ravel()))
    return out


def from_sitk(image: sitk.Image) -> Image:
    """Convert from SimpleITK, keeping spacing, origin and direction."""
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return Image(sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(), direction)


def read_image(path: str | Path, name: str | None = None, series_uid: str | None = None) -> Image:
    """Read a NRRD/NIfTI/MetaImage file or a DICOM series folder as a validated 3D image.

    ``name`` (e.g. the DCE phase) is used in error messages so the user knows which input
    failed. A folder must hold exactly one DICOM series unless ``series_uid`` picks one.
    """
    path = Path(path)
    label = f"{name} ({path})" if name else str(path)
    if not path.exists():
        raise InputFileError(f"{label}: file or folder does not exist")
    try:
        raw = _read_dicom_series(path, series_uid, label) if path.is_dir() else sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputFileError(f"{label}: cannot be read as an image ({error_reason(exc)})") from exc
    frames = raw.GetSize()[3] if raw.GetDimension() == 4 else raw.GetNumberOfComponentsPerPixel()
    if raw.GetDimension() in (3, 4) and frames > 1:
        raise InvalidImageError(
            f"{label}: holds {frames} frames (or components) per voxel, not one volume; a dynamic (DCE) series is "
            "given as the DCE series (--dce, or the manifest's dce column), which splits and names its frames")
    if raw.GetDimension() != 3:
        raise InvalidImageError(
            f"{label}: a 3D volume is needed, got a {raw.GetDimension()}D image of size {raw.GetSize()}"
        )
    image = from_sitk(raw)
    validate_volume(image, label)
    return image


def _read_dicom_series(folder: Path, series_uid: str | None, label: str) -> sitk.Image:
    files = dicom_series_files(folder, series_uid, label)
    headers = dicom_headers(files)
    refuse_multiframe_dynamic(headers, label)
    _refuse_repeated(slice_positions(headers), label, "this DICOM series", "files")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def dicom_series_files(folder: Path, series_uid: str | None, label: str) -> list[str]:
    """The files of the folder's one DICOM series (or of ``series_uid``), in GDCM's order."""
    reader = sitk.ImageSeriesReader()
    try:
        uids = reader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as exc:  # GDCM gives up on some malformed files while listing the series
        raise InputFileError(f"{label}: its DICOM files cannot be read as a series ({error_reason(exc)})") from exc
    if not uids:
        raise InputFileError(f"{label}: no DICOM series found in this folder")
    if series_uid is None:
        if len(uids) > 1:
            listed = "; ".join(_series_summary(reader, folder, uid, label) for uid in uids)
            raise InputFileError(f"{label}: {len(uids)} DICOM series in one folder ({listed}): give the folder of one "
                                 "series (a phase, or the whole dynamic series as the DCE series)")
        series_uid = uids[0]
    elif series_uid not in uids:
        raise InputFileError(f"{label}: series {series_uid} not found; present: {', '.join(uids)}")
    return _series_files(reader, folder, series_uid, label)


def _series_files(reader: sitk.ImageSeriesReader, folder: Path, uid: str, label: str) -> list[str]:
    try:
        return list(reader.GetGDCMSeriesFileNames(str(folder), uid))
    except RuntimeError as exc:
        raise InputFileError(f"{label}: its DICOM files cannot be read as a series ({error_reason(exc)})") from exc


def _series_summary(reader: sitk.ImageSeriesReader, folder: Path, uid: str, label: str) -> str:
    """'number "description", N files' of one series, read from its first file's header (for a choice the user makes)."""
    files = _series_files(reader, folder, uid, label)
    header = dicom_headers(files[:1])[0]
    return f"{header.get('SeriesNumber', '?')} \"{header.get('SeriesDescription', 'no description')}\", {len(files)} files"


def error_reason(exc: Exception) -> str:
    """The useful part of an ITK / GDCM exception (its last non-empty line), not SimpleITK's source path."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def dicom_headers(files: list[str]) -> list:
    """The files' DICOM headers (pydicom datasets without pixel data)."""
    import pydicom

    return [pydicom.dcmread(f, stop_before_pixels=True) for f in files]


def multiframe_positions(header) -> list[tuple[float, ...]]:
    """The slice position of every frame of an enhanced (multi-frame) DICOM ([] for a classic single-frame one)."""
    frames = header.get("PerFrameFunctionalGroupsSequence") or []
    shared = (header.get("SharedFunctionalGroupsSequence") or [None])[0]
    positions = []
    for item in frames:
        group = item if "PlanePositionSequence" in item else shared
        if group is not None and "PlanePositionSequence" in group:
            positions.append(_position(group.PlanePositionSequence[0].ImagePositionPatient))
    return positions


def refuse_multiframe_dynamic(headers: list, label: str) -> None:
    """An enhanced (multi-frame) DICOM whose frames repeat their slice positions holds several time points; GDCM would
    stack them into one volume along z. Refused where one volume is read, before any pixel is."""
    for header in headers:
        _refuse_repeated(multiframe_positions(header), label, "this enhanced multi-frame DICOM", "frames")


def _refuse_repeated(positions: list[tuple[float, ...]], label: str, source: str, unit: str) -> None:
    """Slice positions that repeat mark a dynamic series: read as one volume it would interleave its time points."""
    if len(set(positions)) < len(positions):
        raise InputFileError(
            f"{label}: {source} repeats its slice positions ({len(positions)} {unit} at {len(set(positions))} "
            "positions): it is a dynamic (DCE) series with several time points; give it as the DCE series (--dce, or "
            "the manifest's dce column), which splits and names them")


def slice_positions(headers: list) -> list[tuple[float, ...]]:
    """ImagePositionPatient of each header (repeats mark the frames of a dynamic series)."""
    return [_position(h.get("ImagePositionPatient", (0, 0, 0))) for h in headers]


def _position(values) -> tuple[float, ...]:
    """A DICOM position to 1 µm, so that one slice position compares equal across frames."""
    return tuple(round(float(v), 3) for v in values)


def validate_volume(image: Image, label: str) -> None:
    """Reject what no model here can use: non-3D grids and NaN/Inf voxels."""
    if image.array.ndim != 3:
        raise InvalidImageError(
            f"{label}: a 3D scalar volume is needed, got an array of shape {image.array.shape}"
        )
    if min(image.shape) < 2:
        raise InvalidImageError(
            f"{label}: a 3D volume is needed, got a single slice (size x, y, z = {image.shape[::-1]})"
        )
    if np.issubdtype(image.array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(image.array)))
        if bad:
            raise InvalidImageError(f"{label}: {bad} voxel(s) are NaN or infinite")


def validate_not_constant(image: Image, label: str) -> None:
    """An image whose voxels all have one value carries nothing a model can read (a failed export, a blank series)."""
    low, high = float(image.array.min()), float(image.array.max())
    if low == high:
        raise InvalidImageError(f"{label}: every voxel has the value {low:g}; this is not an image (blank or failed export?)")


def validate_mask(mask: Image, label: str = "tumour mask") -> None:
    """A mask must be binary-like and neither empty nor the whole volume."""
    validate_volume(mask, label)
    foreground = int(np.count_nonzero(mask.array))
    if foreground == 0:
        raise EmptyMaskError(f"{label}: the mask is empty (no foreground voxel)")
    if foreground == mask.array.size:
        raise EmptyMaskError(f"{label}: the mask covers the whole volume, not a tumour")


def write_image(image: Image, path: str | Path, compress: bool = True) -> Path:
    """Write NRRD/NIfTI/MetaImage (chosen by suffix), creating parent folders."""
    path = Path(path)
    if not str(path).endswith(IMAGE_SUFFIXES):
        raise InputFileError(f"{path}: unsupported suffix, use one of {', '.join(IMAGE_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_sitk(image), str(path), useCompression=compress)
    return path


def resample_to(image: Image, reference: Image, is_label: bool = False) -> Image:
    """Resample ``image`` onto ``reference``'s grid (linear for intensities, nearest for labels).

    Raises :class:`GeometryMismatchError` when the two do not overlap in space: resampling
    would then give an all-background volume that silently poisons a prediction.
    """
    if not volumes_overlap(image, reference):
        raise GeometryMismatchError(
            "the volume does not overlap the reference volume in physical space; "
            "check that both come from the same study and frame of reference"
        )
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(to_sitk(image), to_sitk(reference), sitk.Transform(), interpolator, 0.0)
    return from_sitk(out)


def resample_binary(mask: Image, reference: Image) -> Image:
    """A binary mask moved onto ``reference``'s grid as uint8: its indicator interpolated linearly, cut at one half.

    Why not nearest neighbour: a mask computed on a coarser grid (the segmentation network's) keeps
    that grid's staircase when each fine voxel copies the nearest coarse one; cutting the
    interpolated indicator at 0.5 puts the boundary between the coarse voxel centres, where the
    coarse mask says it is. Raises :class:`GeometryMismatchError` as :func:`resample_to` does.
    """
    indicator = resample_to(mask.with_array((np.asarray(mask.array) > 0).astype(np.float32)), reference)
    return indicator.with_array((indicator.array >= 0.5).astype(np.uint8))


def volumes_overlap(a: Image, b: Image) -> bool:
    """True when the LPS bounding boxes of two grids intersect."""
    a_min, a_max = a.physical_extent()
    b_min, b_max = b.physical_extent()
    return bool(np.all(a_min <= b_max) and np.all(b_min <= a_max))


def align_to_reference(
    images: Mapping[str, Image], reference: str, resample: bool = False
) -> dict[str, Image]:
    """Bring named images (DCE phases, modalities) onto the grid of ``images[reference]``.

    Without ``resample`` a differing grid is an error that names the image and every field
    that differs, because silently resampling can hide a wrong series choice.
    """
    if reference not in images:
        raise GeometryMismatchError(f"reference image '{reference}' is not among {sorted(images)}")
    ref = images[reference]
    aligned = {}
    for name, image in images.items():
        diffs = image.grid_differences(ref)
        if not diffs:
            aligned[name] = image
        elif resample:
            log.info("resampling %s onto the %s grid (%s)", name, reference, "; ".join(diffs))
            try:
                aligned[name] = resample_to(image, ref)
            except GeometryMismatchError as exc:
                raise GeometryMismatchError(f"{name}: {exc}") from exc
        else:
            raise GeometryMismatchError(
                f"{name} is not on the {reference} grid: {'; '.join(diffs)}. "
                "Resample it onto the reference (resample=True / --resample) or pick the matching series."
            )
    return aligned


def _ijk_to_lps(image: Image) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = image.direction @ np.diag(image.spacing)
    matrix[:3, 3] = image.origin
    return matrix


def write_segmentation(
    mask: Image, path: str | Path, name: str = TUMOUR_SEGMENT, color: tuple[float, float, float] = (0.95, 0.84, 0.16)
) -> Path:
    """Write a binary mask as a Slicer ``.seg.nrrd`` with one named, coloured segment (slicerio)."""
    import slicerio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    voxels_ijk = np.transpose(mask.array > 0, (2, 1, 0))
    segmentation = slicerio.create_segmentation(voxels_ijk.shape, _ijk_to_lps(mask))
    slicerio.add_segment(segmentation, voxels_ijk, {"id": name, "name": name, "color": list(color)})
    slicerio.write_segmentation(str(path), segmentation)
    return path


def read_segmentation(path: str | Path, name: str | None = TUMOUR_SEGMENT) -> Image:
    """Read one named segment of a ``.seg.nrrd`` as a uint8 mask with its geometry.

    ``name=None``: the Tumour segment, or else the file's only segment whatever its name (a segment the
    user renamed, or the runner-up candidate the breast job writes to be used as the tumour).
    """
    import slicerio

    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: segmentation file does not exist")
    segmentation = slicerio.read_segmentation(str(path))
    names = slicerio.segment_names(segmentation)
    if name is None:
        name = names[0] if len(names) == 1 else TUMOUR_SEGMENT
    if name not in names:
        raise InputFileError(f"{path}: no segment named '{name}' (segments: {', '.join(names) or 'none'})")
    voxels = slicerio.extract_segments(segmentation, [(name, 1)])["voxels"]
    lps = np.asarray(segmentation["ijkToLPS"], float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    array = np.transpose(np.asarray(voxels) > 0, (2, 1, 0)).astype(np.uint8)
    return Image(array, tuple(spacing), tuple(lps[:3, 3]), lps[:3, :3] / spacing)


def read_mask(path: str | Path) -> Image:
    """A label file or a .seg.nrrd (its Tumour segment, or its only segment) → the tumour mask image."""
    return read_segmentation(path, None) if str(path).endswith(".seg.nrrd") else read_image(path, "tumour mask")
