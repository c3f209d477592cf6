"""Spatial helpers with no family knowledge: resampling to a spacing, crops around a mask and back.

Training and inference of every family call these same functions, so a crop is cut the same
way in both.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk

from responseai.image import Image
from responseai.io import from_sitk, to_sitk


def resample_to_spacing(image: Image, spacing: tuple[float, float, float], is_label: bool = False) -> Image:
    """Resample onto an isotropic-or-not target spacing covering the same physical extent."""
    src = to_sitk(image)
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(src.GetSize(), src.GetSpacing(), spacing)]
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(src, size, sitk.Transform(), interpolator, src.GetOrigin(), spacing, src.GetDirection(), 0.0)
    return from_sitk(out)


def bounding_box_crop(
    array: np.ndarray, centre: Iterable[int], size: tuple[int, int, int]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """A ``size`` crop of the last three axes centred on ``centre``, zero-padded at the edges.

    Returns the crop and the slices into the padded frame, so a map computed on the crop can
    be pasted back onto the input grid (:func:`paste_crop`).
    """
    centre = np.asarray(list(centre), int)
    half = np.asarray(size) // 2
    start = centre - half
    pad = [(0, 0)] * (array.ndim - 3) + [(int(s), int(s)) for s in size]
    padded = np.pad(array, pad)
    slices = tuple(slice(int(b + s), int(b + s + n)) for b, s, n in zip(start, size, size))
    return padded[(Ellipsis, *slices)], slices


def paste_crop(crop: np.ndarray, slices: tuple[slice, ...], shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`bounding_box_crop` for a 3D map (outside the crop: 0)."""
    size = [s.stop - s.start for s in slices]
    padded = np.zeros([n + 2 * m for n, m in zip(shape, size)], crop.dtype)
    padded[slices] = crop
    return padded[tuple(slice(m, m + n) for n, m in zip(shape, size))]


def mask_centre(mask: np.ndarray) -> tuple[int, int, int]:
    """Centre of the mask's bounding box (robust to a lobulated shape, unlike the centroid)."""
    idx = np.argwhere(mask > 0)
    return tuple(int(v) for v in (idx.min(0) + idx.max(0)) // 2)
