"""pCR preprocessing contract: validated phases + tumour mask → DCE channels cropped around the tumour.

Training, inference and evaluation all build the network input with :func:`prepare_case`, so the
crop a model was trained on is the crop it is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from responseai.breast.constants import REFERENCE_PHASE
from responseai.breast.preprocess import check_mask, check_phases, dce_channels, exam_scale
from responseai.errors import EmptyMaskError
from responseai.image import Image
from responseai.spatial import crop_grid, mask_centre_world, to_canonical




@dataclass
class PreparedCase:
    """Model input for one case plus the crop grid, so maps go back onto the input grid exactly."""

    image: np.ndarray  # C×Z×Y×X float32 crop on the canonical crop grid
    mask: np.ndarray  # Z×Y×X uint8 tumour mask on the same crop grid
    grid: Image  # the crop grid (axial, LPS-aligned, the model spacing; geometry only)
    reference: Image  # the input post1 grid


def check_inputs(phases: Mapping[str, Image | None], mask: Image) -> dict[str, Image]:
    """Validate the DCE phases and mask; everything on the post1 grid, no silent resampling."""
    aligned = check_phases(phases)
    check_mask(mask, aligned[REFERENCE_PHASE])
    return aligned


def prepare_case(phases: Mapping[str, Image | None], mask: Image, config: Mapping) -> PreparedCase:
    """Validated phases + mask → an axial crop of the DCE channels centred on the tumour at the model spacing.

    The crop grid is LPS-aligned whatever the acquisition (sagittal, flipped, oblique), and the
    phases are resampled straight onto it; intensities are scaled by the *whole* exam's
    pre-contrast statistics, so a crop is not normalised by its own tumour.
    """
    aligned = check_inputs(phases, mask)
    binary = mask.with_array((mask.array > 0).astype(np.uint8))
    grid = crop_grid(mask_centre_world(binary), tuple(int(s) for s in config["crop_size"]),
                     tuple(float(s) for s in config["spacing"]))
    mask_crop = to_canonical(binary, grid, is_label=True).array
    if not mask_crop.any():
        raise EmptyMaskError("tumour mask vanishes at the model spacing (smaller than one voxel)")
    crop = {name: to_canonical(image, grid) for name, image in aligned.items()}
    channels = dce_channels(crop, exam_scale(aligned["pre"]))
    return PreparedCase(channels.astype(np.float32), mask_crop, grid, aligned[REFERENCE_PHASE])
