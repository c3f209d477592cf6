"""Patient inputs → the network's token blocks (phantom cohort and single cases alike).

One path for training and prediction, so a tile, an ultrasound image or a report is scaled the
same way in both: tiles as RGB in [0, 1] centred by a fixed 0.5 / 0.25 (stain colour carries
the signal, so no per-tile normalisation), ultrasound z-scored per image (no absolute unit),
the report through :func:`responseai.recurrence.text.embed_reports`, the clinical record
through the shared :class:`ClinicalEncoder` fitted on training patients (one token per
variable: its z-score or one-hot columns plus its missing flag). Also the readers for a single
case's files (a folder of tile images, an ultrasound PNG / NRRD, a report text file).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from responseai.clinical import ClinicalEncoder, Variable
from responseai.errors import InputFileError, InvalidImageError
from responseai.recurrence.constants import CLINICAL_SCHEMA, TILE_SIZE, ULTRASOUND_SIZE
from responseai.recurrence.fit import CohortArrays

CASE_BLOCKS = ("pathology", "ultrasound", "report", "clinical")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
N_REPORT_TOKENS = 4


class PatientInputs(Protocol):
    tiles: np.ndarray | None
    ultrasound: np.ndarray | None
    report: str | None
    clinical: dict


@dataclass
class CaseInputs:
    """One patient read from files (the prediction command); ``None`` marks a missing modality."""

    tiles: np.ndarray | None = None
    ultrasound: np.ndarray | None = None
    report: str | None = None
    clinical: dict = field(default_factory=dict)


def fit_clinical_encoder(records: Sequence[dict]) -> ClinicalEncoder:
    return ClinicalEncoder(tuple(CLINICAL_SCHEMA.values())).fit(records)


def clinical_encoder_from_card(data: dict) -> ClinicalEncoder:
    return ClinicalEncoder.from_dict(data, CLINICAL_SCHEMA)


def clinical_groups(variables: Sequence[Variable]) -> list[int]:
    """Encoder columns per variable (categories + missing flag, or z-score + missing flag)."""
    return [len(v.categories) + 1 if v.is_categorical else 2 for v in variables]


def block_specs(encoder: ClinicalEncoder, text_dim: int) -> dict[str, dict]:
    """The multimodal network's token blocks (the card's ``architecture.config.modalities``)."""
    return {"pathology": {"kind": "tiles", "channels": 3, "size": TILE_SIZE, "width": 16},
            "ultrasound": {"kind": "image", "channels": 1, "size": ULTRASOUND_SIZE, "width": 16},
            "report": {"kind": "vector", "dim": text_dim, "tokens": N_REPORT_TOKENS},
            "clinical": {"kind": "grouped", "groups": clinical_groups(encoder.variables)}}


def scale_tiles(tiles: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) in [0, 1] → (T, 3, H, W) centred."""
    return ((np.asarray(tiles, np.float32) - 0.5) / 0.25).transpose(0, 3, 1, 2)


def scale_ultrasound(image: np.ndarray) -> np.ndarray:
    """(H, W) → (1, H, W) z-scored per image."""
    image = np.asarray(image, np.float32)
    return ((image - image.mean()) / (image.std() + 1e-6))[None]


def prepare_arrays(patients: Sequence[PatientInputs], encoder: ClinicalEncoder, n_tiles: int,
                   embed: Callable[[list[str]], np.ndarray], time: np.ndarray | None = None,
                   event: np.ndarray | None = None, ids: list[str] | None = None) -> CohortArrays:
    """Token blocks for ``patients`` (a missing block is zeros and ``present`` False)."""
    n = len(patients)
    present = np.array([[p.tiles is not None, p.ultrasound is not None, p.report is not None, True]
                        for p in patients], bool).reshape(n, len(CASE_BLOCKS))
    tiles = np.zeros((n, n_tiles, 3, TILE_SIZE, TILE_SIZE), np.float32)
    ultrasound = np.zeros((n, 1, ULTRASOUND_SIZE, ULTRASOUND_SIZE), np.float32)
    for i, p in enumerate(patients):
        if p.tiles is not None:
            tiles[i] = scale_tiles(p.tiles)[np.resize(np.arange(len(p.tiles)), n_tiles)]
        if p.ultrasound is not None:
            ultrasound[i] = scale_ultrasound(p.ultrasound)
    with_report = [i for i, p in enumerate(patients) if p.report is not None]
    embedded = embed([patients[i].report for i in with_report])
    report = np.zeros((n, embedded.shape[1] if len(with_report) else 384), np.float32)
    report[with_report] = embedded
    blocks = {"pathology": tiles, "ultrasound": ultrasound, "report": report,
              "clinical": encoder.transform([p.clinical for p in patients]).astype(np.float32)}
    return CohortArrays(list(CASE_BLOCKS), blocks, present,
                        np.ones(n) if time is None else np.asarray(time, float),
                        np.ones(n, bool) if event is None else np.asarray(event, bool), ids or [])


# ------------------------------------------------------------------------ single-case file readers
def _read_picture(path: Path, mode: str) -> np.ndarray:
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as picture:
            return np.asarray(picture.convert(mode), np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise InputFileError(f"{path}: not a readable image ({exc})") from exc


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    return image if image.shape[0] == image.shape[1] == size else resize(image, (size, size), anti_aliasing=True)


def read_tiles(path: str | Path) -> np.ndarray:
    """A folder of tile images (or one image) → (T, 32, 32, 3) in [0, 1], each tile resized."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: pathology tile folder not found")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise InputFileError(f"{path}: no tile images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    return np.stack([_resize(_read_picture(f, "RGB"), TILE_SIZE) for f in files]).astype(np.float32)


def read_ultrasound(path: str | Path) -> np.ndarray:
    """An ultrasound PNG/JPEG, or a NRRD / NIfTI (its middle slice) → (48, 48) image."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: ultrasound image not found")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = _read_picture(path, "L")
    else:  # SimpleITK directly: the shared reader insists on 3-D volumes, an ultrasound is often one slice
        import SimpleITK as sitk

        try:
            volume = np.squeeze(sitk.GetArrayFromImage(sitk.ReadImage(str(path)))).astype(np.float32)
        except RuntimeError as exc:
            raise InputFileError(f"{path}: not a readable image ({exc})") from exc
        image = volume if volume.ndim == 2 else volume[volume.shape[0] // 2]
    if image.ndim != 2 or not np.isfinite(image).all():
        raise InvalidImageError(f"{path}: the ultrasound must be one finite 2-D image (got shape {image.shape})")
    return _resize(image.astype(np.float32), ULTRASOUND_SIZE).astype(np.float32)


def read_report(path: str | Path) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: report text not readable as UTF-8 ({exc})") from exc
