"""Explanation maps: put a model's attention / Grad-CAM back on the input grid and score it.

Why a separate module: the same three operations serve the Slicer overlay (a map on the
patient's own post1 grid), the per-case report and the cohort evaluation (is attention on the
tumour?). Agreement is measured on the model's crop grid, where map and mask share voxels
exactly; the map shown to the user is resampled onto the input grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from responseai.image import Image
from responseai.io import resample_to


def upsample_to_crop(grid_map: np.ndarray, crop_shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear upsampling of a feature-grid map (z×y×x) to the crop (Z×Y×X)."""
    tensor = torch.as_tensor(np.asarray(grid_map, np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(crop_shape), mode="trilinear", align_corners=False)[0, 0].numpy()


def normalise_unit(values: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] by its maximum (all-zero stays zero)."""
    values = np.clip(np.asarray(values, np.float32), 0, None)
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0 else values


def mass_in_mask(crop_map: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the map's total (non-negative) mass that lies inside the tumour mask."""
    values = np.clip(np.asarray(crop_map, np.float64), 0, None)
    total = values.sum()
    return float(values[np.asarray(mask) > 0].sum() / total) if total > 0 else float("nan")


def pointing_game(crop_map: np.ndarray, mask: np.ndarray) -> bool:
    """Hit when the map's maximum voxel lies inside the tumour mask (strict, no tolerance)."""
    values = np.asarray(crop_map)
    if not np.isfinite(values).all() or values.max() <= values.min():
        return False  # a flat map points nowhere
    return bool(np.asarray(mask).ravel()[int(np.argmax(values))] > 0)


def crop_map_to_input(crop_map: np.ndarray, grid: Image, reference: Image) -> Image:
    """A map on a crop grid resampled onto the input (post1) grid, scaled to [0, 1] (0 outside the crop)."""
    on_input = resample_to(grid.with_array(np.asarray(crop_map, np.float32)), reference)
    return on_input.with_array(normalise_unit(on_input.array))
