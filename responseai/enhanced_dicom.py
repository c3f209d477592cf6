"""One enhanced (multi-frame) DICOM file holding a dynamic series, split into its time points with geometry.

Newer scanners (Siemens XA, Philips) export a DCE acquisition as a single Enhanced MR object: every slice of every
time point is a frame, and where each frame lies and when it was acquired is in its per-frame functional groups.
GDCM reads such a file as one volume with all frames stacked along z, so the frames are split here with pydicom
(which reads the functional groups and the pixel data) and each time point becomes a 3D image: slices sorted along
the normal of ImageOrientationPatient, the origin at the first slice's ImagePositionPatient, in-plane spacing from
PixelSpacing, slice spacing from the positions themselves (checked to be even).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from responseai.errors import InputFileError
from responseai.image import Image
from responseai.io import multiframe_positions

SPACING_TOLERANCE = 0.01  # relative spread of the slice steps within one time point accepted as even


def is_multiframe_dynamic(header) -> bool:
    """Whether an enhanced multi-frame header repeats its frames' slice positions (several time points)."""
    positions = multiframe_positions(header)
    return len(set(positions)) < len(positions)


def enhanced_frames(path: str, label: str) -> tuple[list[Image], tuple[float, ...] | None]:
    """The time points of one enhanced multi-frame DICOM file, and their start times (s after the first) if stored."""
    import pydicom

    dataset = pydicom.dcmread(path)
    positions = multiframe_positions(dataset)
    groups = _time_points(dataset, positions, label)
    orientation = _attribute(dataset, 0, "PlaneOrientationSequence", "ImageOrientationPatient")
    pixel_spacing = _attribute(dataset, 0, "PixelMeasuresSequence", "PixelSpacing")
    if orientation is None or pixel_spacing is None:
        raise InputFileError(f"{label}: the multi-frame DICOM states no {'orientation' if orientation is None else 'pixel spacing'}"
                             " in its functional groups, so its frames cannot be placed")
    try:
        pixels = dataset.pixel_array.reshape(len(positions), int(dataset.Rows), int(dataset.Columns))
    except (RuntimeError, NotImplementedError, ValueError) as exc:
        raise InputFileError(f"{label}: its pixel data cannot be decoded here ({exc})") from exc
    cosines = np.asarray(orientation, float)
    normal = np.cross(cosines[:3], cosines[3:])
    row_spacing, column_spacing = (float(v) for v in pixel_spacing)
    frames = []
    for group in groups:
        order = sorted(group, key=lambda i: float(np.dot(positions[i], normal)))
        depth = np.diff([np.dot(positions[i], normal) for i in order])
        if len(depth) and (depth.min() <= 0 or np.ptp(depth) > SPACING_TOLERANCE * depth.mean()):
            raise InputFileError(f"{label}: the slices of one time point are not evenly spaced (steps "
                                 f"{depth.min():.3g}–{depth.max():.3g} mm); export it as classic DICOM or a 4D NIfTI")
        array = np.stack([_rescaled(dataset, i, pixels[i]) for i in order])
        direction = np.column_stack([cosines[:3], cosines[3:], normal])
        spacing = (column_spacing, row_spacing, float(depth.mean()) if len(depth) else 1.0)
        frames.append(Image(array, spacing, positions[order[0]], direction))
    return frames, _start_times(dataset, groups)


def _attribute(dataset, frame: int, sequence: str, name: str):
    """A functional-group attribute of one frame: its per-frame group first, then the shared one."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    shared = dataset.get("SharedFunctionalGroupsSequence") or []
    for item in [*per_frame[frame:frame + 1], *shared[:1]]:
        if sequence in item and name in item[sequence][0]:
            return item[sequence][0][name].value
    return None


def _time_points(dataset, positions: Sequence[tuple[float, ...]], label: str) -> list[list[int]]:
    """Frame indices per time point: by TemporalPositionIndex when stored, else the k-th frame at each position."""
    indices = [_attribute(dataset, i, "FrameContentSequence", "TemporalPositionIndex") for i in range(len(positions))]
    if all(index is not None for index in indices):
        keys = [int(index) for index in indices]
    else:
        seen: dict[tuple[float, ...], int] = {}
        keys = []
        for position in positions:
            keys.append(seen.get(position, 0))
            seen[position] = keys[-1] + 1
    groups = [[i for i, key in enumerate(keys) if key == value] for value in sorted(set(keys))]
    if len({len(group) for group in groups}) != 1:
        raise InputFileError(f"{label}: the time points of this multi-frame DICOM hold different numbers of slices")
    return groups


def _rescaled(dataset, frame: int, pixels: np.ndarray) -> np.ndarray:
    slope = _attribute(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _attribute(dataset, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    if slope is None and intercept is None:
        return pixels
    return pixels.astype(np.float32) * float(slope if slope is not None else 1) + float(intercept or 0)


def _start_times(dataset, groups: list[list[int]]) -> tuple[float, ...] | None:
    """Each time point's earliest FrameAcquisitionDateTime, in seconds after the first time point's."""
    starts = []
    for group in groups:
        stamps = [_attribute(dataset, i, "FrameContentSequence", "FrameAcquisitionDateTime") for i in group]
        if any(stamp is None for stamp in stamps):
            return None
        starts.append(min(_datetime(str(stamp)).timestamp() for stamp in stamps))
    return tuple(round(start - starts[0], 3) for start in starts)


def _datetime(text: str) -> datetime:
    """DICOM DT (YYYYMMDDHHMMSS.FFFFFF, trailing parts optional; a UTC offset ignored: one file, one clock)."""
    whole, _, fraction = re.split(r"[+-]", text.strip())[0].partition(".")
    stamp = datetime.strptime(whole.ljust(14, "0")[:14], "%Y%m%d%H%M%S")
    return stamp.replace(microsecond=int(fraction.ljust(6, "0")[:6])) if fraction else stamp
