"""A 2D mammogram file → a checked one-slice :class:`Image` with its real geometry, and its patient ID.

Formats: PNG / JPEG / TIFF (no geometry: unit spacing), NRRD / NIfTI (geometry from the header,
read by SimpleITK) and DICOM (MG / DX / CR, read by pydicom), as a file or as a folder that holds
exactly one DICOM file at any depth (how archives such as CBIS-DDSM deliver one image). DICOM is read here rather than by
SimpleITK because a mammogram's geometry and grey scale live in attributes GDCM does not apply
consistently to projection images:

* spacing: ``PixelSpacing`` (calibrated to the patient) when present, else ``ImagerPixelSpacing``
  (at the detector; what most full-field digital mammograms carry), else unit spacing with a
  warning. Both are stored as (row, column) spacing, i.e. (y, x).
* grey scale: the modality LUT (rescale) is applied, and a ``MONOCHROME1`` image (low values
  bright) is inverted within its representable range, so that bright = dense tissue as in
  ``MONOCHROME2`` and the model sees the same input whichever convention the vendor used.
* refused with a specific message: colour images (``SamplesPerPixel`` > 1, RGB / YBR / palette)
  and multi-frame images (tomosynthesis or any 3D stack).

``PatientID`` is returned so that a mammogram and pathology of different patients can be refused
(:func:`responseai.crossmodal.preprocess.check_same_patient`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from responseai.crossmodal.preprocess import PIXEL_SUFFIXES, check_mammogram, read_pixels
from responseai.errors import InputFileError, InvalidImageError
from responseai.image import Image
from responseai.io import from_sitk

log = logging.getLogger(__name__)

GREY_INTERPRETATIONS = ("MONOCHROME1", "MONOCHROME2")
SPACING_ATTRIBUTES = ("PixelSpacing", "ImagerPixelSpacing")  # in order of preference


@dataclass(frozen=True)
class Mammogram:
    """A checked 2D mammogram (one-slice Image) and the patient ID its file names, when it names one."""

    image: Image
    patient_id: str | None = None


def read_mammogram(path: str | Path) -> Mammogram:
    """Any supported mammogram file (see the module docstring), checked as a 2D single-channel image."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"mammogram: {path} does not exist")
    label = f"mammogram ({path.name})"
    if path.suffix.lower() in PIXEL_SUFFIXES:
        return Mammogram(Image(check_mammogram(read_pixels(path, "mammogram"), label)[None]))
    if path.is_dir():
        return _read_dicom(_single_dicom_file(path), label)
    if _is_dicom(path):
        return _read_dicom(path, label)
    return Mammogram(_read_sitk(path, label))


def _single_dicom_file(folder: Path) -> Path:
    """The one DICOM file under ``folder``; none or several (a series, a whole exam) is refused by name."""
    from pydicom.misc import is_dicom

    found = [p for p in sorted(folder.rglob("*")) if p.is_file() and is_dicom(p)]
    if not found:
        raise InputFileError(f"mammogram: folder {folder} holds no DICOM file")
    if len(found) > 1:
        raise InvalidImageError(f"mammogram: folder {folder} holds {len(found)} DICOM files "
                                f"({', '.join(p.name for p in found[:3])}{', …' if len(found) > 3 else ''}); "
                                "give the one 2D mammogram file")
    return found[0]


def _is_dicom(path: Path) -> bool:
    from pydicom.misc import is_dicom

    return path.suffix.lower() in (".dcm", ".dicom") or is_dicom(path)


def _read_sitk(path: Path, label: str) -> Image:
    try:
        raw = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputFileError(f"mammogram: {path} cannot be read as an image ({str(exc).strip().splitlines()[-1]})") from exc
    if raw.GetNumberOfComponentsPerPixel() > 1:
        raise InvalidImageError(f"{label}: has {raw.GetNumberOfComponentsPerPixel()} components per pixel; "
                                "a mammogram must be single-channel")
    if raw.GetDimension() == 2:
        raw = sitk.JoinSeries(raw)
    image = from_sitk(raw)
    return image.with_array(check_mammogram(image.array, label)[None])


def _read_dicom(path: Path, label: str) -> Mammogram:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as exc:
        raise InputFileError(f"mammogram: {path} is not a readable DICOM file ({exc})") from exc
    pixels = _dicom_grey_pixels(dataset, label)
    spacing_y, spacing_x = _dicom_spacing(dataset, label)
    patient = str(dataset.get("PatientID", "") or "").strip() or None
    return Mammogram(Image(check_mammogram(pixels, label)[None], (spacing_x, spacing_y, 1.0)), patient)


def _dicom_grey_pixels(dataset, label: str) -> np.ndarray:
    """Pixel values after the modality LUT, MONOCHROME1 inverted; colour and multi-frame refused."""
    from pydicom.pixels import apply_modality_lut

    if "PixelData" not in dataset:
        raise InputFileError(f"{label}: the DICOM file holds no image (no PixelData; SOP class "
                             f"{dataset.get('SOPClassUID', 'unknown')})")
    interpretation = str(dataset.get("PhotometricInterpretation", "")).strip()
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples > 1 or interpretation not in GREY_INTERPRETATIONS:
        raise InvalidImageError(f"{label}: is a colour DICOM image (PhotometricInterpretation {interpretation or '?'}, "
                                f"{samples} samples per pixel); a mammogram must be greyscale (MONOCHROME1/2)")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InvalidImageError(f"{label}: has {frames} frames (a tomosynthesis or other 3D image); "
                                "a 2D mammogram (one frame) is needed")
    try:
        values = apply_modality_lut(dataset.pixel_array, dataset).astype(np.float32)
    except (ValueError, RuntimeError, NotImplementedError) as exc:  # e.g. a compressed transfer syntax without decoder
        raise InputFileError(f"{label}: the DICOM pixel data cannot be decoded ({exc})") from exc
    if interpretation == "MONOCHROME1":
        low, high = apply_modality_lut(_stored_range(dataset), dataset).astype(np.float32)
        values = low + high - values
    return values


def _stored_range(dataset) -> np.ndarray:
    """The lowest and highest storable pixel value (BitsStored, signed or not): the MONOCHROME1 mirror."""
    bits = int(dataset.BitsStored)
    if int(dataset.get("PixelRepresentation", 0)) == 1:
        return np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1])
    return np.array([0, 2**bits - 1])


def _dicom_spacing(dataset, label: str) -> tuple[float, float]:
    """(row, column) spacing in mm from the first present of :data:`SPACING_ATTRIBUTES`; unit spacing without."""
    for attribute in SPACING_ATTRIBUTES:
        value = dataset.get(attribute)
        if value is None:
            continue
        spacing = tuple(float(v) for v in value)
        if len(spacing) != 2 or min(spacing) <= 0:
            raise InvalidImageError(f"{label}: {attribute} {list(value)} is not two positive values (mm)")
        return spacing
    log.warning("%s: no PixelSpacing or ImagerPixelSpacing; using 1 mm pixels (box and heatmap in pixel units)", label)
    return 1.0, 1.0
