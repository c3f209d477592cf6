"""Export a tumour mask as a DICOM Segmentation (highdicom) referencing the source series.

A DICOM SEG lets the mask travel back to PACS and open on top of the very images it came
from; highdicom writes the object and checks its consistency, so nothing here encodes DICOM
by hand. The source slices are ordered as SimpleITK's series reader ordered them when the
volume was read, so frame k of the mask is slice k of the image.

highdicom needs pydicom 3 with numpy 2 (0.23+); 3D Slicer 5.10 bundles pydicom 2.4 with numpy 2,
for which no highdicom release works (0.22 calls ``np.float_``, removed in numpy 2). There the
export says so (:class:`DicomSegUnavailableError`) and the mask is still written as .seg.nrrd.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from responseai import __version__
from responseai.errors import GeometryMismatchError, InputFileError, ResponseAIError
from responseai.image import Image


class DicomSegUnavailableError(ResponseAIError):
    """This Python cannot write DICOM SEG (no highdicom for its pydicom); other outputs are unaffected."""


def _highdicom():
    """highdicom, or why it cannot be used here."""
    try:
        import highdicom
    except ImportError as exc:
        raise DicomSegUnavailableError(
            f"DICOM SEG export needs highdicom, which needs pydicom 3 (this Python has pydicom {pydicom.__version__}; "
            "3D Slicer 5.12 or newer, or the responseai command line): the mask is in tumour.seg.nrrd") from exc
    return highdicom


def source_slices(folder: str | Path | list[str]) -> list[pydicom.Dataset]:
    """The series' datasets in SimpleITK's reading order (one series per folder), or the given files in order
    (one frame of a dynamic series)."""
    if isinstance(folder, list):
        return [pydicom.dcmread(f) for f in folder]
    folder = Path(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(uids) != 1:
        raise InputFileError(f"{folder}: expected one DICOM series, found {len(uids)}")
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uids[0])
    return [pydicom.dcmread(f) for f in files]


def write_dicom_seg(mask: Image, source_folder: str | Path | list[str], out_path: str | Path,
                    segment_label: str = "Tumour") -> Path:
    """Write ``mask`` (on the source series' grid) as a binary DICOM SEG next to its source."""
    hd = _highdicom()
    sources = source_slices(source_folder)
    frames = (mask.array > 0).astype(np.uint8)
    if frames.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
        raise GeometryMismatchError(
            f"mask grid {frames.shape} does not match the DICOM series "
            f"({len(sources)} slices of {sources[0].Rows}×{sources[0].Columns})"
        )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=segment_label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="ResponseAI", version=__version__, family=codes.DCM.ArtificialIntelligence
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="ResponseAI",
        manufacturer_model_name="ResponseAI",
        software_versions=__version__,
        device_serial_number="0",
        series_description="ResponseAI tumour segmentation (research use only)",
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out_path)
    return out_path
