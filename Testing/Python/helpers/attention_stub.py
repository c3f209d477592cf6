"""A stand-in attention map for report and rendering tests, independent of any trained model."""

from __future__ import annotations

import numpy as np

from responseai.image import Image


def tumour_centre_ijk(mask: Image) -> np.ndarray:
    """Centroid of the mask in (i, j, k) voxel coordinates."""
    return np.argwhere(mask.array > 0).mean(axis=0)[::-1]


def centre_ras(mask: Image) -> np.ndarray:
    """The tumour centroid in RAS millimetres (where the snapshots cut)."""
    return (mask.ijk_to_ras() @ np.append(tumour_centre_ijk(mask), 1.0))[:3]


def gaussian_attention(mask: Image, sigma_mm: float = 15.0) -> Image:
    """A Gaussian blob of peak 1 at the tumour centroid, on the mask's grid."""
    k, j, i = np.indices(mask.shape, dtype=float)
    ci, cj, ck = tumour_centre_ijk(mask)
    sx, sy, sz = mask.spacing
    d2 = ((i - ci) * sx) ** 2 + ((j - cj) * sy) ** 2 + ((k - ck) * sz) ** 2
    return mask.with_array(np.exp(-d2 / (2 * sigma_mm**2)).astype(np.float32))
