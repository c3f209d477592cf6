"""The patient's side of a mask, and the tumour search kept to the breast the form names.

Every patient referred for neoadjuvant therapy has a biopsy-proven cancer in a known breast, and
every referral says which. The search for the tumour reads both breasts, and its wrong choices are
mostly something enhancing in the *other* breast — a node, the internal mammary vessels, a benign
lesion, a patch of parenchyma (docs/segmentation.md, "The breast the form names"). So when the form
gives the side (``laterality``), candidates in the other breast are set aside; when none is left in
the named breast, the search falls back to both and the user is told (``SIDE_CAUTION``): a side typed
wrong on the form must not hide the tumour.

Side is read in world coordinates, as a radiologist reads it: LPS x > 0 is the patient's left. That
trusts the scanner's left-right origin to lie near the patient's midline (the patient lies centred in
the bore; breasts sit 40 mm or more either side of it).
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


def named_side(clinical: Mapping[str, object] | None) -> str | None:
    """The form's ``laterality`` ("left" / "right"), None when absent or unknown (ClinicalValueError when malformed)."""
    if clinical is None:
        return None
    side = LATERALITY.validate(clinical.get(LATERALITY.name))
    return None if side is None else str(side)


def world_x(image: Image) -> np.ndarray:
    """LPS world x (mm) of every voxel of ``image``, Z×Y×X (broadcast from the three index axes)."""
    direction, spacing = np.asarray(image.direction, float).reshape(3, 3), np.asarray(image.spacing, float)
    shape = image.array.shape  # z, y, x
    i, j, k = (np.arange(n, dtype=float) for n in shape[::-1])
    row = direction[0] * spacing
    return (float(image.origin[0]) + row[0] * i[None, None, :] + row[1] * j[None, :, None]
            + row[2] * k[:, None, None])


def side_of(mask: Image) -> str:
    """The patient's side of a mask's centre: LPS world x > 0 is the patient's left."""
    k, j, i = np.argwhere(mask.array > 0).mean(0)
    world = np.asarray(mask.direction, float).reshape(3, 3) @ (np.array([i, j, k]) * np.asarray(mask.spacing))
    return "left" if world[0] + float(mask.origin[0]) > 0 else "right"


def half_of(grid: Image, side: str) -> np.ndarray:
    """The voxels of ``grid`` on the patient's ``side`` ("left": LPS world x > 0), Z×Y×X bool."""
    left = world_x(grid) > 0
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
