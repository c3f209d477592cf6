"""Test helper: write a volume as a DICOM MR series with the geometry tags a scanner sets."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from responseai.image import Image
from responseai.io import to_sitk


def write_dicom_series(image: Image, folder: Path, series: str = "1.2.826.0.1.3680043.8.498.1",
                       tags: dict[str, str] | None = None, frame: int = 0) -> None:
    """A DICOM series written slice by slice with the geometry tags a scanner would set.

    ``frame`` > 0 adds the slices of another temporal position to the same folder (a dynamic series: pass its
    TemporalPositionIdentifier / AcquisitionTime in ``tags``).
    """
    folder.mkdir(exist_ok=frame > 0)
    volume = to_sitk(image)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    direction = volume.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6], direction[1], direction[4], direction[7]))
    for k in range(volume.GetDepth()):
        slice_ = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, value in {
            "0008|0060": "MR", "0020|000e": series, "0020|000d": "1.2.826.0.1.3680043.8.498.2",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4", "0008|0018": f"{series}.{frame}.{k + 1}",
            "0020|0037": orientation, "0020|0032": "\\".join(f"{p:.10f}" for p in position),
            "0020|0013": str(frame * volume.GetDepth() + k + 1), "0018|0050": f"{image.spacing[2]:.10f}",
            "0020|0052": "1.2.826.0.1.3680043.8.498.3", "0010|0020": "PHANTOM-1", "0010|0010": "Phantom^One",
            "0008|0020": "20261123", "0020|0010": "1", "0008|0050": "ACC1", **(tags or {}),
        }.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"frame{frame}-slice{k:03d}.dcm"))
        writer.Execute(slice_)
