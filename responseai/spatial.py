"""Spatial helpers with no family knowledge: the canonical grid, resampling to a spacing, crops and back.

Training and inference of every family call these same functions, so a crop is cut the same
way in both. The *canonical grid* makes every acquisition look alike to a network: axial,
axis-aligned with LPS (i → left, j → posterior, k → superior), at the model's spacing, whatever
the scanner stored (RAS-flipped, LPI, sagittal, oblique). Outputs go back onto the user's grid
with :func:`responseai.io.resample_to`, which works in physical space.
"""

from __future__ import annotations

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


def crop_grid(centre: np.ndarray, size_zyx: tuple[int, int, int], spacing: tuple[float, float, float]) -> Image:
    """An LPS-aligned grid of ``size_zyx`` voxels at ``spacing`` centred on the world point ``centre``.

    Resampling straight onto it (:func:`to_canonical`) cuts an axial crop out of any acquisition
    in one interpolation, and a map computed on it goes back with ``resample_to``.
    """
    extent = (np.asarray(size_zyx[::-1]) - 1) * np.asarray(spacing)
    return Image(np.zeros(tuple(size_zyx), np.uint8), spacing, tuple(np.asarray(centre) - extent / 2), np.eye(3))


def mask_centre_world(mask: Image) -> np.ndarray:
    """World (LPS) point at the centre of the mask's bounding box (robust to a lobulated shape)."""
    idx = np.argwhere(mask.array > 0)
    centre_kji = (idx.min(0) + idx.max(0)) / 2.0
    return mask.direction @ (centre_kji[::-1] * np.asarray(mask.spacing)) + np.asarray(mask.origin)
