"""The patient's side of a mask, and the tumour search kept to the breast the form names.

Every patient referred for neoadjuvant therapy has a biopsy-proven cancer in a known breast, and
every referral says which. The search for the tumour reads both breasts, and its wrong choices are
mostly something enhancing in the *other* breast — a node, the internal mammary vessels, a benign
lesion, a patch of parenchyma (docs/segmentation.md, "The breast the form names"). So when the form
gives the side (``laterality``), candidates in the other breast are set aside; when none is left in
the named breast, the search falls back to both and the user is told (``SIDE_CAUTION``): a side typed
wrong on the form must not hide the tumour.

Side is read in world coordinates, as a radiologist reads it: larger LPS x is the patient's left, of
the patient's midline. The midline is read off the anatomy when the breast region has both breasts —
half-way across the gap between them (:func:`midline_mm`) — because an exam's origin need not put
x = 0 on the patient (a table offset, another site's convention); with one breast in view (or a user's
mask, read without the region) it is the scanner's x = 0, where the patient lies centred in the bore.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from scipy import ndimage

from responseai.breast.constants import LATERALITY, SIDE_CAUTION, SIDE_NOT_FOUND
from responseai.breast.segmentation.candidates import Candidates
from responseai.image import Image

#: the share of a candidate's voxels that must lie on the named side for it to stay in the search
MIN_ON_SIDE = 0.5
#: the patient's other breast
OTHER_SIDE = {"left": "right", "right": "left"}
#: the percentile of a breast's world x taken as its medial edge (a robust minimum / maximum)
MEDIAL_EDGE_PERCENTILE = 2.0


def named_side(clinical: Mapping[str, object] | None) -> str | None:
    """The form's ``laterality`` ("left" / "right"), None when absent or unknown (ClinicalValueError when malformed)."""
    if clinical is None:
        return None
    side = LATERALITY.validate(clinical.get(LATERALITY.name))
    return None if side is None else str(side)


def _lps_x(image: Image) -> np.ndarray:
    """LPS world x as a linear function of the voxel index (i, j, k, 1): the negated first row of the image's
    IJK→RAS matrix (RAS x = −LPS x)."""
    return -image.ijk_to_ras()[0]


def world_x(image: Image) -> np.ndarray:
    """LPS world x (mm) of every voxel of ``image``, Z×Y×X (broadcast from the three index axes)."""
    row = _lps_x(image)
    i, j, k = (np.arange(n, dtype=float) for n in image.array.shape[:3][::-1])
    return row[3] + row[0] * i[None, None, :] + row[1] * j[None, :, None] + row[2] * k[:, None, None]


def _voxel_world_x(image: Image, voxels: np.ndarray) -> np.ndarray:
    """LPS world x (mm) of ``voxels`` (N × (z, y, x) indices of ``image``)."""
    row = _lps_x(image)
    return row[3] + voxels[:, ::-1] @ row[:3]


def midline_mm(grid: Image, region: np.ndarray | None) -> float:
    """World x (mm) of the patient's midline: half-way between the medial edges of the two largest components of
    the breast ``region`` on ``grid``, when it has two; else 0 (the scanner's left-right origin)."""
    if region is None:
        return 0.0
    labels, n = ndimage.label(region)
    if n < 2:
        return 0.0
    largest = np.argsort(np.bincount(labels.ravel())[1:])[::-1][:2] + 1
    xs = sorted((_voxel_world_x(grid, np.argwhere(labels == label)) for label in largest), key=np.mean)
    right_edge = np.percentile(xs[0], 100 - MEDIAL_EDGE_PERCENTILE)  # the patient's right breast: smaller x
    left_edge = np.percentile(xs[1], MEDIAL_EDGE_PERCENTILE)
    return float((right_edge + left_edge) / 2)


def side_of(mask: Image, midline: float = 0.0) -> str:
    """The patient's side of a mask's centre: LPS world x beyond ``midline`` (mm) is the patient's left."""
    centre = np.argwhere(mask.array > 0).mean(0, keepdims=True)
    return "left" if _voxel_world_x(mask, centre)[0] > midline else "right"


def half_of(grid: Image, side: str, midline: float = 0.0) -> np.ndarray:
    """The voxels of ``grid`` on the patient's ``side`` ("left": LPS world x beyond ``midline``), Z×Y×X bool."""
    left = world_x(grid) > midline
    return left if side == "left" else ~left


def kept_to_side(candidates: Candidates, half: np.ndarray) -> tuple[Candidates, int]:
    """``candidates`` with those mostly outside ``half`` no longer allowed, and how many were set aside; unchanged
    (and 0) when that would leave none: the caller then says the mask is not in the named breast."""
    if candidates.n == 0:
        return candidates, 0
    share = np.asarray(ndimage.mean(half.astype(float), candidates.labels, np.arange(1, candidates.n + 1)), float)
    kept = candidates.allowed & (share >= MIN_ON_SIDE)
    if not kept.any():
        return candidates, 0
    return replace(candidates, allowed=kept), int(candidates.allowed.sum() - kept.sum())


def side_caution(mask_side: str, named: str | None, model_mask: bool) -> str | None:
    """The caution when the mask's side is not the form's (None when it is, or the form gives none)."""
    if named is None or mask_side == named:
        return None
    return SIDE_CAUTION.format(side=mask_side, named=named, why=SIDE_NOT_FOUND if model_mask else "")
