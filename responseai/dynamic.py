"""A dynamic (DCE) acquisition given as one series: its frames, their times, and which are pre / early / late.

Scanners and converters rarely hand a radiologist three separate phase files. A dynamic breast
exam arrives as **one DICOM series** whose slices repeat at every temporal position (GE, Philips
and the I-SPY / ACRIN 6698 archives), as **one enhanced multi-frame DICOM** (newer Siemens and Philips;
:mod:`responseai.enhanced_dicom`), as **one 4D NIfTI** (dcm2niix) or NRRD, or in Slicer as a
**sequence**. The families read phases by name (``pre``, ``post1`` early, ``post2`` late); this module turns a dynamic series into those names and says which frames it took and why, so the
choice is visible in every result and can be overridden.

The frame choice (:func:`choose_frames`) is the one the kinetics literature reads (Hylton's
functional tumour volume, the BI-RADS curve): S0 the pre-contrast frame, S1 the early frame at
peak enhancement of a cancer (≈ 90–150 s after injection) and S2 the last, delayed frame. Frame
times come from DICOM (TemporalPositionIdentifier groups; TriggerTime or AcquisitionTime) or a
Slicer sequence's index values; without times the convention of clinical 3–6 phase protocols
holds: frame 0 pre, frame 1 early, the last frame late.

SimpleITK reads every volume (geometry rules); pydicom reads only the headers that split a series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from responseai.enhanced_dicom import enhanced_frames, is_multiframe_dynamic
from responseai.errors import InputFileError, InvalidImageError, ResponseAIError
from responseai.image import Image
from responseai.io import (
    dicom_headers,
    dicom_series_files,
    error_reason,
    from_sitk,
    refuse_multiframe_dynamic,
    slice_positions,
    validate_volume,
)

log = logging.getLogger(__name__)

PHASE_NAMES = ("pre", "post1", "post2")  # the phase vocabulary of the DCE families (S0, S1 early, S2 late)
EARLY_S = 120.0  # S1: peak enhancement of a cancer, 90–150 s after injection (kinetics constants)
LATE_MIN_S = 240.0  # below this the "late" frame reads the curve before any washout can show
MANY_FRAMES = 6  # clinical DCE protocols have 3–6 phases (pre + 2–5 post); more untimed frames get a note
# DICOM attributes that tell the frames of one dynamic series apart, in the order they are trusted.
FRAME_KEYS = ("TemporalPositionIdentifier", "TriggerTime", "AcquisitionTime", "ContentTime")


@dataclass(frozen=True)
class DynamicSeries:
    """The frames of one dynamic acquisition, in acquisition order, on one grid."""

    frames: tuple[Image, ...]
    times_s: tuple[float, ...] | None  # each frame's start, seconds after the first frame's; None: unknown
    source: str
    files: tuple[tuple[str, ...], ...] | None = None  # a DICOM source's files per frame (a DICOM SEG references them)

    def __post_init__(self) -> None:
        if self.times_s is not None and len(self.times_s) != len(self.frames):
            raise ValueError("one time per frame")


@dataclass(frozen=True)
class FrameChoice:
    """Which frame is which phase, and the sentence that says why (shown to the user)."""

    indices: dict[str, int]  # phase name -> frame index (post2 absent with two frames)
    reason: str

    def sources(self, series: DynamicSeries) -> dict[str, str]:
        """Per phase, where it came from (result.json's ``inputs``): the series and the frame, with its time."""
        def when(index: int) -> str:
            return f", {series.times_s[index]:g} s" if series.times_s is not None else ""
        return {name: f"{series.source} [frame {index}{when(index)}]" for name, index in self.indices.items()}


def read_dynamic(path: str | Path, name: str = "DCE series", series_uid: str | None = None) -> DynamicSeries:
    """Read a 4D image file (NIfTI, NRRD, MetaImage) or a DICOM folder holding one dynamic series."""
    path = Path(path)
    label = f"{name} ({path})"
    if not path.exists():
        raise InputFileError(f"{label}: file or folder does not exist")
    files = None
    if path.is_dir():
        frames, times, files = _dicom_frames(path, series_uid, label)
    else:
        frames, times = _file_frames(path, label)
    if len(frames) < 2:
        raise InvalidImageError(f"{label}: holds a single frame; a dynamic series needs a pre-contrast frame and at "
                                "least one post-contrast frame (give single phases as pre / post1 instead)")
    for k, frame in enumerate(frames):
        validate_volume(frame, f"{label} frame {k}")
    return DynamicSeries(tuple(frames), times, str(path), files)


def parse_frames(text: str | None) -> dict[str, int] | None:
    """``"0,2,5"`` or ``"pre=0,post1=2,post2=5"`` (post2 optional) → phase → frame index; None/"" → None."""
    if text is None or not str(text).strip():
        return None
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    try:
        if all("=" in item for item in items):
            pairs = [item.split("=", 1) for item in items]
            chosen = {key.strip().lower(): int(value) for key, value in pairs}
        else:
            chosen = dict(zip(PHASE_NAMES, (int(item) for item in items)))
            if len(items) > len(PHASE_NAMES):
                raise ValueError
    except ValueError:
        raise InvalidImageError(f"frames '{text}': give 2 or 3 frame numbers (pre, post1[, post2]) such as '0,1,4', "
                                "or name them: 'pre=0,post1=1,post2=4'") from None
    unknown = sorted(set(chosen) - set(PHASE_NAMES))
    if unknown or not {"pre", "post1"} <= set(chosen):
        raise InvalidImageError(f"frames '{text}': name pre and post1 (and optionally post2), got "
                                f"{', '.join(sorted(chosen)) or 'nothing'}")
    return chosen


def choose_frames(series: DynamicSeries, given: Mapping[str, int] | None = None) -> FrameChoice:
    """Pre / early / late frames: the user's if given (checked), else by time after the first frame, else by order."""
    n = len(series.frames)
    if given:
        indices = _checked(given, n, series.source)
        at = (lambda k: f" ({series.times_s[k]:g} s)") if series.times_s is not None else (lambda k: "")
        return FrameChoice(indices, "frames chosen by the user: " + ", ".join(
            f"{name} = frame {index}{at(index)}" for name, index in indices.items()))
    if series.times_s is None:
        indices = {"pre": 0, "post1": 1, **({"post2": n - 1} if n >= 3 else {})}
        reason = (f"{n} frames without acquisition times: frame 0 taken as pre-contrast, frame 1 as the early phase"
                  + (f", frame {n - 1} (the last) as the late phase" if n >= 3 else ""))
        if n > MANY_FRAMES:  # a clinical protocol has 3–6 phases; more, untimed, is likely an ultrafast series
            reason += (f" — with {n} frames and no times frame 1 may come seconds after the injection, not at the "
                       "early phase: check the frames, or name them")
        return FrameChoice(indices, reason)
    times = np.asarray(series.times_s, dtype=float)
    early = 1 + int(np.argmin(np.abs(times[1:] - times[0] - EARLY_S)))
    late = n - 1 if n - 1 != early else None
    indices = {"pre": 0, "post1": early, **({"post2": late} if late is not None else {})}
    reason = (f"{n} frames: frame 0 pre-contrast, frame {early} ({times[early]:g} s) the one nearest {EARLY_S:g} s as "
              "the early phase")
    if late is not None:
        reason += f", frame {late} ({times[late]:g} s, the last) as the late phase"
        if times[late] - times[0] < LATE_MIN_S:
            reason += f" — earlier than {LATE_MIN_S:g} s, so washout may not show yet"
    return FrameChoice(indices, reason)


def dynamic_phases(series: DynamicSeries, given: Mapping[str, int] | None = None) -> tuple[dict[str, Image], FrameChoice]:
    """The chosen frames as named phases (all on the series' one grid), and the choice."""
    choice = choose_frames(series, given)
    log.info("%s: %s", series.source, choice.reason)
    return {name: series.frames[index] for name, index in choice.indices.items()}, choice


@contextmanager
def frames_named(choice: FrameChoice) -> Iterator[None]:
    """A phase refused downstream (no enhancement, a constant frame) is re-raised naming the frames it came from and
    how to choose others: the user gave one series, not the phase the message talks about."""
    try:
        yield
    except ResponseAIError as exc:
        raise type(exc)(f"{exc} [from the DCE series: {choice.reason}; choose other frames as PRE,POST1[,POST2]: "
                        "--dce-frames, the manifest's dce_frames or the frames box in Slicer]") from exc


def choice_record(series: DynamicSeries, choice: FrameChoice) -> dict:
    """What result.json keeps of the choice: enough to read the same frames again (the report does)."""
    return {"path": series.source, "frames": dict(choice.indices), "n_frames": len(series.frames),
            "times_s": list(series.times_s) if series.times_s is not None else None, "choice": choice.reason}


def recorded_frame(record: Mapping[str, object], phase: str) -> tuple[Image, list[str] | None]:
    """A phase of a prediction read again from its ``dce_series`` record: the image, and its DICOM files if any."""
    series = read_dynamic(str(record["path"]), f"DCE series ({phase})")
    index = int(record["frames"][phase])
    if len(series.frames) != int(record["n_frames"]):
        raise InputFileError(f"{record['path']}: now holds {len(series.frames)} frames, the prediction read "
                             f"{record['n_frames']}: it changed since")
    return series.frames[index], (list(series.files[index]) if series.files else None)


def _checked(given: Mapping[str, int], n: int, source: str) -> dict[str, int]:
    indices = {name: int(index) for name, index in given.items() if index is not None}
    outside = {name: index for name, index in indices.items() if not 0 <= index < n}
    if outside:
        raise InvalidImageError(f"{source}: frame(s) {', '.join(f'{k}={v}' for k, v in outside.items())} do not exist; "
                                f"the series has frames 0–{n - 1}")
    order = [indices[name] for name in PHASE_NAMES if name in indices]
    if order != sorted(set(order)):
        raise InvalidImageError(f"{source}: frames {', '.join(f'{k}={v}' for k, v in indices.items())} must be distinct "
                                "and in acquisition order (pre before post1 before post2)")
    return indices


def _file_frames(path: Path, label: str) -> tuple[list[Image], tuple[float, ...] | None]:
    """A 4D image (x, y, z, t) or a 3D image with one component per frame (NRRD 'list' axes, Slicer sequences)."""
    try:
        raw = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputFileError(f"{label}: cannot be read as an image ({error_reason(exc)})") from exc
    if raw.GetDimension() == 4:
        size = list(raw.GetSize())
        frames = []
        for t in range(size[3]):
            frames.append(from_sitk(sitk.Extract(raw, size[:3] + [0], [0, 0, 0, t])))
        return frames, None
    if raw.GetDimension() == 3 and raw.GetNumberOfComponentsPerPixel() > 1:
        frames = [from_sitk(sitk.VectorIndexSelectionCast(raw, k)) for k in range(raw.GetNumberOfComponentsPerPixel())]
        return frames, _nrrd_index_times(raw, len(frames))
    if raw.GetDimension() == 3:
        return [from_sitk(raw)], None
    raise InvalidImageError(f"{label}: a 4D (x, y, z, time) image is needed, got a {raw.GetDimension()}D image")


def _nrrd_index_times(raw: sitk.Image, n: int) -> tuple[float, ...] | None:
    """Frame times from a Slicer sequence NRRD's ``axis 0 index values`` (unit ``axis 0 index unit``)."""
    keys = set(raw.GetMetaDataKeys())
    if "axis 0 index values" not in keys:
        return None
    unit = raw.GetMetaData("axis 0 index unit") if "axis 0 index unit" in keys else "s"
    values = raw.GetMetaData("axis 0 index values").split()
    return index_times(values, unit) if len(values) == n else None


def index_times(values: Sequence[str], unit: str) -> tuple[float, ...] | None:
    """A sequence's index values as seconds after the first, when they are numbers in s, ms or min; else None."""
    scale = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "min": 60.0}.get(unit.strip().lower())
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return None
    if scale is None or not numbers:
        return None
    return tuple((v - numbers[0]) * scale for v in numbers)


def dicom_frame_groups(files: Sequence[str], label: str) -> tuple[list[list[str]], tuple[float, ...] | None] | None:
    """Split one DICOM series' files into frames (each sorted along the slice normal); None: a single frame.

    A frame is a set of files with one value of the first :data:`FRAME_KEYS` attribute that splits the
    series into groups of equal size, each with every slice position once.
    """
    headers = dicom_headers(list(files))
    refuse_multiframe_dynamic(headers, label)
    positions = slice_positions(headers)
    if len(set(positions)) == len(positions):
        return None
    for key in FRAME_KEYS:
        values = [h.get(key) for h in headers]
        if any(v is None or str(v).strip() == "" for v in values):
            continue
        groups: dict[str, list[int]] = {}
        for i, value in enumerate(values):
            groups.setdefault(str(value), []).append(i)
        sizes = {len(g) for g in groups.values()}
        if len(groups) < 2 or len(sizes) != 1 or any(len({positions[i] for i in g}) != len(g) for g in groups.values()):
            continue
        ordered = sorted(groups.values(), key=lambda g: _order_value(key, values[g[0]]))
        normal = _slice_normal(headers[0])
        frames = [[files[i] for i in sorted(g, key=lambda i: float(np.dot(positions[i], normal)))] for g in ordered]
        return frames, _frame_times(key, [[headers[i] for i in g] for g in ordered])
    raise InputFileError(f"{label}: slice positions repeat ({len(positions)} files, {len(set(positions))} positions), so "
                         f"the series holds several frames, but none of {', '.join(FRAME_KEYS)} tells them apart: "
                         "export each phase as its own series")


def _dicom_frames(folder: Path, series_uid: str | None, label: str
                  ) -> tuple[list[Image], tuple[float, ...] | None, tuple[tuple[str, ...], ...] | None]:
    files = dicom_series_files(folder, series_uid, label)
    if len(files) == 1 and is_multiframe_dynamic(dicom_headers(files)[0]):  # one enhanced file: all time points
        frames, times = enhanced_frames(files[0], label)
        return frames, times, None
    split = dicom_frame_groups(files, label)
    groups, times = ([list(files)], None) if split is None else split
    frames = []
    for group in groups:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(group)
        try:
            frames.append(from_sitk(reader.Execute()))
        except RuntimeError as exc:
            raise InputFileError(f"{label}: cannot be read as an image ({error_reason(exc)})") from exc
    shapes = {(f.shape, f.spacing) for f in frames}
    if len(shapes) > 1:
        raise InputFileError(f"{label}: its frames do not share one grid ({len(shapes)} different sizes or spacings)")
    return frames, times, tuple(tuple(group) for group in groups)


def _slice_normal(header) -> np.ndarray:
    cosines = [float(v) for v in header.get("ImageOrientationPatient", (1, 0, 0, 0, 1, 0))]
    return np.cross(cosines[:3], cosines[3:])


def _seconds(value: object) -> float:
    """DICOM TM (HHMMSS.FFFFFF) → seconds since midnight."""
    text = str(value).strip()
    hours, minutes, seconds = int(text[0:2]), int(text[2:4] or 0), float(text[4:] or 0)
    return 3600 * hours + 60 * minutes + seconds


def _order_value(key: str, value: object) -> float:
    return _seconds(value) if key in ("AcquisitionTime", "ContentTime") else float(value)


def _frame_times(key: str, groups: list[list]) -> tuple[float, ...] | None:
    """Each frame's start in seconds after the first's: TriggerTime (ms), else the earliest AcquisitionTime."""
    if key == "TriggerTime":
        starts = [min(float(h.TriggerTime) for h in g) / 1000.0 for g in groups]
    else:
        try:
            starts = [min(_seconds(h.AcquisitionTime) for h in g) for g in groups]
        except (AttributeError, ValueError):
            return None
    starts = [s + 86400.0 if s < starts[0] else s for s in starts]  # a series acquired across midnight
    return tuple(round(s - starts[0], 3) for s in starts)

