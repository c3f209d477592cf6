"""Breast DCE preprocessing shared by segmentation, pCR, training and the Slicer Logic.

Checks first (required phases present, finite 3D volumes on the post1 grid, a non-empty mask
on that grid), then the network channels. Segmentation and pCR build their inputs with these
same functions, so the two models can never disagree on what a valid case is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from responseai.breast.constants import REFERENCE_PHASE, REQUIRED_PHASES
from responseai.errors import MissingPhaseError
from responseai.image import Image
from responseai.io import align_to_reference, validate_mask, validate_volume


def check_phases(phases: Mapping[str, Image | None], resample: bool = False) -> dict[str, Image]:
    """Required phases present, finite 3D volumes, all on the post1 grid (or resampled onto it)."""
    present = {name: image for name, image in phases.items() if image is not None}
    missing = [name for name in REQUIRED_PHASES if name not in present]
    if missing:
        raise MissingPhaseError(f"missing DCE phase(s): {', '.join(missing)} (required: {', '.join(REQUIRED_PHASES)})")
    for name, image in present.items():
        validate_volume(image, f"phase {name}")
    return align_to_reference(present, REFERENCE_PHASE, resample=resample)


def check_mask(mask: Image, reference: Image, resample: bool = False) -> Image:
    """A non-empty binary mask on the reference grid (resampled with nearest neighbour on request)."""
    validate_mask(mask)
    aligned = align_to_reference({"mask": mask, REFERENCE_PHASE: reference}, REFERENCE_PHASE, resample=resample)["mask"]
    binary = aligned.with_array((aligned.array > 0.5).astype("uint8"))
    validate_mask(binary, "tumour mask after resampling")
    return binary


def dce_channels(phases: Mapping[str, Image]) -> np.ndarray:
    """Stack pre, post1, post2 and post1−pre as float32 channels (C, Z, Y, X).

    Intensities are divided by the 99.5th percentile of the pre-contrast phase, which removes
    the site's gain without looking at the tumour. A missing post2 is replaced by post1
    (a plateau assumption), which the model card states.
    """
    pre = phases["pre"].array.astype(np.float32)
    post1 = phases["post1"].array.astype(np.float32)
    post2 = phases["post2"].array.astype(np.float32) if phases.get("post2") is not None else post1
    scale = float(np.percentile(pre, 99.5)) or 1.0
    return np.stack([pre, post1, post2, post1 - pre]) / scale
