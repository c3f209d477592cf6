"""Spatial helpers with no family knowledge: the canonical grid, resampling to a spacing, crops and back.

Training and inference of every family call these same functions, so a crop is cut the same
way in both. The *canonical grid* makes every acquisition look alike to a network: axial,
axis-aligned with LPS (i → left, j → posterior, k → superior), at the model's spacing, whatever
the scanner stored (RAS-flipped, LPI, sagittal, oblique). Outputs go back onto the user's grid
with :func:`responseai.io.resample_to`, which works in physical space.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import SimpleITK as sitk

from responseai.image import Image
from responseai.io import from_sitk, to_sitk


def canonical_grid(image: Image, spacing: tuple[float, float, float]) -> Image:
    """An empty LPS-aligned grid (identity direction) at ``spacing`` covering ``image``'s physical extent.

    The extent is the bounding box of the voxel centres, so an oblique or sagittal volume keeps
    all of its voxels; the array is zero (only the geometry is meant).
    """
    low, high = image.physical_extent()
    size = [max(2, int(np.floor((hi - lo) / s)) + 1) for lo, hi, s in zip(low, high, spacing)]
    return Image(np.zeros(size[::-1], np.uint8), spacing, tuple(low), np.eye(3))


def to_canonical(image: Image, grid: Image, is_label: bool = False) -> Image:
    """``image`` resampled onto a canonical grid from :func:`canonical_grid` (linear; nearest for labels)."""
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(to_sitk(image), to_sitk(grid), sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
    result = from_sitk(out)
    return result.with_array(result.array.astype(np.uint8)) if is_label else result


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
