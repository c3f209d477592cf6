"""Input checks and model-ready tensors: mammogram → [−1, 1] single channel, H&E → Macenko-normalised RGB.

Each problem a user can cause has its own message: an RGB image given as the mammogram, a grey
image given as pathology, a constant or non-finite image, an image too small to hold texture, a
site name the model does not know. Mammograms are scaled by their own 1st / 99th percentiles
(vendor windows differ; the percentiles remove gain and offset but not the LUT's curve, which is
what the domain generalisation has to handle). Pathology tiles are stain-normalised with
torchstain's Macenko normaliser towards the standard reference stain vectors, so a site's
haematoxylin hue and intensity are mapped onto one appearance before the encoder sees them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from responseai.crossmodal.constants import DOMAINS, MIN_IMAGE_SIDE
from responseai.errors import InputFileError, InvalidImageError, ResponseAIError

log = logging.getLogger(__name__)

PATHOLOGY_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PIXEL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class UnknownDomainError(ResponseAIError):
    """A site / domain name the model was not built with."""


def check_domain(name: str | None, known: tuple[str, ...] = DOMAINS) -> int | None:
    """Index of a site name (None stays None: an unseen site is allowed, it simply has no index)."""
    if name is None:
        return None
    if name not in known:
        raise UnknownDomainError(f"unknown domain '{name}'; known: {', '.join(known)} (omit it for a new site)")
    return known.index(name)


class DifferentPatientsError(ResponseAIError):
    """The inputs of one case name different patients (a mammogram and pathology of two people)."""


def check_same_patient(ids: Mapping[str, str | None]) -> str | None:
    """The one patient ID every known source agrees on (None when none is known); refuse when two differ.

    ``ids`` maps where an ID came from (the mammogram's DICOM PatientID, an option, a manifest
    column) to the ID. An unknown (empty) ID is not a mismatch: most tiles carry none.
    """
    known = {source: str(pid).strip() for source, pid in ids.items() if pid is not None and str(pid).strip()}
    if len(set(known.values())) > 1:
        listed = ", ".join(f"{source} '{pid}'" for source, pid in known.items())
        raise DifferentPatientsError(f"the inputs are of different patients ({listed}): a mammogram and pathology "
                                     "are analysed together only when they come from one patient")
    return next(iter(known.values()), None)


def _check_finite_varying(array: np.ndarray, label: str) -> None:
    if not np.isfinite(array).all():
        raise InvalidImageError(f"{label}: contains NaN or infinite pixels")
    if float(array.max()) - float(array.min()) <= 0:
        raise InvalidImageError(f"{label}: image is constant (value {float(array.flat[0]):g}); nothing to analyse")
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        raise InvalidImageError(f"{label}: image is {array.shape[0]}×{array.shape[1]} pixels, at least "
                                f"{MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} are needed")


def check_mammogram(array: np.ndarray, label: str = "mammogram") -> np.ndarray:
    """A 2D single-channel float array; an RGB(A) or 3D input is refused with what was found."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:  # a 2D slice stored as (1, H, W)
        array = array[0]
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        raise InvalidImageError(f"{label}: has {array.shape[-1]} colour channels; a mammogram must be single-channel "
                                "(grey). Was a pathology tile given as the mammogram?")
    if array.ndim != 2:
        raise InvalidImageError(f"{label}: expected a 2D image, got shape {array.shape}")
    array = array.astype(np.float32)
    _check_finite_varying(array, label)
    return array


def check_pathology(array: np.ndarray, label: str = "pathology tile") -> np.ndarray:
    """An (H, W, 3) RGB tile; grey or RGBA inputs get a specific message."""
    array = np.asarray(array)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1):
        raise InvalidImageError(f"{label}: is single-channel (grey); an H&E tile must be RGB. "
                                "Was the mammogram given as pathology?")
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim != 3 or array.shape[-1] != 3:
        raise InvalidImageError(f"{label}: expected an RGB image (H, W, 3), got shape {array.shape}")
    _check_finite_varying(array.astype(np.float32), label)
    if array.dtype != np.uint8:
        top = float(array.max())
        array = np.clip(array * (255.0 if top <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return array


def scale_mammogram(array: np.ndarray) -> np.ndarray:
    """Percentile window (1–99) → [−1, 1]."""
    low, high = np.percentile(array, [1, 99])
    if high <= low:
        low, high = float(array.min()), float(array.max())
    return np.clip(2 * (array - low) / (high - low) - 1, -1, 1).astype(np.float32)


def _resize(tensor: torch.Tensor, size: int) -> torch.Tensor:
    """(C, H, W) → (C, size, size), area-averaging when shrinking."""
    mode = "area" if min(tensor.shape[-2:]) > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(tensor[None], size=(size, size), mode=mode, **kwargs)[0]


def mammogram_tensor(array: np.ndarray, size: int) -> torch.Tensor:
    """Checked mammogram → (1, size, size) in [−1, 1]."""
    return _resize(torch.from_numpy(scale_mammogram(check_mammogram(array)))[None], size)


def _macenko():
    from torchstain.torch.normalizers import TorchMacenkoNormalizer

    return TorchMacenkoNormalizer()


def stain_normalise(tile: np.ndarray) -> np.ndarray:
    """Macenko normalisation to the standard reference; a tile without enough stained tissue is kept as is.

    Macenko needs stained pixels to estimate the two stain vectors; on a tile of mostly
    background it can fail, and then the unnormalised tile (with a logged warning) is better than
    refusing the whole case.
    """
    try:
        normed, _, _ = _macenko().normalize(I=torch.from_numpy(np.ascontiguousarray(tile)).permute(2, 0, 1), stains=False)
    except (RuntimeError, ValueError, IndexError) as exc:
        log.warning("Macenko stain normalisation failed (%s); using the tile unnormalised", exc)
        return tile
    return normed.numpy().astype(np.uint8)


def pathology_tensor(tile: np.ndarray, size: int, normalise_stain: bool = True) -> torch.Tensor:
    """Checked RGB tile → (3, size, size) in about [−1, 1] after stain normalisation."""
    tile = check_pathology(tile)
    if normalise_stain:
        tile = stain_normalise(tile)
    tensor = torch.from_numpy(tile.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    return _resize(tensor, size)


def read_pixels(path: str | Path, label: str) -> np.ndarray:
    """A PNG / JPEG / TIFF file as an array (grey stays 2D, colour stays (H, W, C))."""
    from PIL import Image as PILImage, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{label}: {path} does not exist")
    try:
        with PILImage.open(path) as image:
            return np.array(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise InputFileError(f"{label}: {path} is not a readable image ({exc})") from exc


def pathology_files(path: str | Path) -> list[Path]:
    """One tile file, or every image file of a folder (sorted), as the patient's pathology."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in PATHOLOGY_SUFFIXES)
        if not files:
            raise InputFileError(f"pathology: folder {path} holds no {'/'.join(PATHOLOGY_SUFFIXES)} tile")
        return files
    if not path.is_file():
        raise InputFileError(f"pathology: {path} does not exist")
    return [path]
