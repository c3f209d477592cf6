"""pCR preprocessing contract: validated phases + tumour mask → DCE channels cropped around the tumour.

Training, inference and evaluation all build the network input with :func:`prepare_case`, so the
crop a model was trained on is the crop it is served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from responseai.breast.constants import REFERENCE_PHASE
from responseai.breast.preprocess import check_mask, check_phases, dce_channels
from responseai.errors import EmptyMaskError
from responseai.image import Image
from responseai.spatial import bounding_box_crop, mask_centre, resample_to_spacing




@dataclass
class PreparedCase:
    """Model input for one case plus what is needed to map maps back onto the input grid."""

    image: np.ndarray  # C×Z×Y×X float32 crop at the model spacing
    mask: np.ndarray  # Z×Y×X uint8 crop of the tumour mask at the model spacing
    slices: tuple[slice, ...]  # crop position in the (padded) resampled grid, see paste_crop
    resampled: Image  # the resampled grid (geometry only is used)
    reference: Image  # the input post1 grid


def check_inputs(phases: Mapping[str, Image | None], mask: Image) -> dict[str, Image]:
    """Validate the DCE phases and mask; everything on the post1 grid, no silent resampling."""
    aligned = check_phases(phases)
    check_mask(mask, aligned[REFERENCE_PHASE])
    return aligned


def prepare_case(phases: Mapping[str, Image | None], mask: Image, config: Mapping) -> PreparedCase:
    """Validated phases + mask → crop of the DCE channels around the tumour at the model spacing."""
    aligned = check_inputs(phases, mask)
    spacing = tuple(float(s) for s in config["spacing"])
    resampled = {name: resample_to_spacing(img, spacing) for name, img in aligned.items()}
    mask_rs = resample_to_spacing(mask.with_array((mask.array > 0).astype(np.uint8)), spacing, is_label=True)
    if not mask_rs.array.any():
        raise EmptyMaskError("tumour mask vanishes at the model spacing (smaller than one voxel)")
    channels = dce_channels(resampled)
    size = tuple(int(s) for s in config["crop_size"])
    centre = mask_centre(mask_rs.array)
    crop, slices = bounding_box_crop(channels, centre, size)
    mask_crop, _ = bounding_box_crop(mask_rs.array.astype(np.uint8), centre, size)
    return PreparedCase(crop.astype(np.float32), mask_crop, slices, mask_rs, aligned[REFERENCE_PHASE])
