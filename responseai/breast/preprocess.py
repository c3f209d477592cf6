"""Breast DCE preprocessing shared by segmentation, pCR, training and the Slicer Logic.

Checks first (required phases present, finite 3D volumes on the post1 grid, a non-empty mask
on that grid), then the network channels. Segmentation and pCR build their inputs with these
same functions, so the two models can never disagree on what a valid case is.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from responseai.breast.constants import REFERENCE_PHASE, REQUIRED_PHASES
from responseai.errors import InvalidImageError, MissingPhaseError
from responseai.image import Image
from responseai.io import align_to_reference, validate_mask, validate_not_constant, validate_volume
from responseai.spatial import canonical_grid, to_canonical

MIN_ENHANCEMENT = 0.05  # p99.9 of post1 − pre, as a fraction of the pre-contrast p99: below it, no contrast arrived


class CheckedPhases(dict):
    """Phases that passed :func:`check_phases` (all on the post1 grid): checking them again is a no-op.

    A case is checked once when it is read; segmentation and pCR then receive these and skip the
    percentiles and grid comparisons they would otherwise repeat on every exam of a cohort.
    """


def check_phases(phases: Mapping[str, Image | None], resample: bool = False) -> CheckedPhases:
    """Required phases present, finite 3D volumes, all on the post1 grid (or resampled onto it)."""
    if isinstance(phases, CheckedPhases):
        return phases
    present = {name: image for name, image in phases.items() if image is not None}
    missing = [name for name in REQUIRED_PHASES if name not in present]
    if missing:
        raise MissingPhaseError(f"missing DCE phase(s): {', '.join(missing)} (required: {', '.join(REQUIRED_PHASES)})")
    for name, image in present.items():
        validate_volume(image, f"phase {name}")
        validate_not_constant(image, f"phase {name}")
    aligned = align_to_reference(present, REFERENCE_PHASE, resample=resample)
    check_enhancement(aligned["pre"], aligned[REFERENCE_PHASE])
    return CheckedPhases(aligned)


def check_enhancement(pre: Image, post1: Image) -> None:
    """Refuse a post-contrast phase that shows no enhancement (the pre phase twice, a wrong series).

    Every breast DCE exam enhances somewhere (heart, vessels, parenchyma, the lesion); a model
    fed two copies of the same phase would still print a probability.
    """
    scale = float(np.percentile(pre.array, 99)) or float(np.abs(pre.array).max()) or 1.0
    enhancement = np.percentile(post1.array.astype(np.float32) - pre.array.astype(np.float32), 99.9) / scale
    if enhancement < MIN_ENHANCEMENT:
        raise InvalidImageError(
            f"phase {REFERENCE_PHASE} shows no enhancement over pre (strongest 0.1 % of voxels: {enhancement:+.1%} of "
            f"the pre-contrast signal, {MIN_ENHANCEMENT:.0%} needed): check that the phases are pre- and "
            "post-contrast series of the same DCE study, in the right order")


def canonical_phases(phases: Mapping[str, Image], spacing: tuple[float, float, float]) -> tuple[dict[str, Image], Image]:
    """Phases on one canonical grid (axial, LPS-aligned, model spacing) built around post1.

    Whatever the acquisition (RAS-flipped, LPI, sagittal, oblique), the network sees the same
    anatomy in the same array directions; maps go back with :func:`responseai.io.resample_to`.
    """
    grid = canonical_grid(phases[REFERENCE_PHASE], spacing)
    return {name: to_canonical(image, grid) for name, image in phases.items()}, grid


def check_mask(mask: Image, reference: Image, resample: bool = False) -> Image:
    """A non-empty binary mask on the reference grid (resampled with nearest neighbour on request)."""
    validate_mask(mask)
    aligned = align_to_reference({"mask": mask, REFERENCE_PHASE: reference}, REFERENCE_PHASE, resample=resample)["mask"]
    binary = aligned.with_array((aligned.array > 0.5).astype("uint8"))
    validate_mask(binary, "tumour mask after resampling")
    return binary


def exam_scale(pre: Image) -> float:
    """The exam's intensity unit: the 99.5th percentile of the pre-contrast phase (removes the site's gain)."""
    return float(np.percentile(pre.array, 99.5)) or 1.0


def dce_channels(phases: Mapping[str, Image], scale: float | None = None) -> np.ndarray:
    """Stack pre, post1, post2 and post1−pre as float32 channels (C, Z, Y, X), divided by ``scale``.

    ``scale`` defaults to :func:`exam_scale` of these phases; a crop passes the whole exam's, so
    it is not normalised by its own content. A missing post2 is replaced by post1 (a plateau
    assumption), which the model card states.
    """
    pre = phases["pre"].array.astype(np.float32)
    post1 = phases["post1"].array.astype(np.float32)
    post2 = phases["post2"].array.astype(np.float32) if phases.get("post2") is not None else post1
    scale = exam_scale(phases["pre"]) if scale is None else scale
    return np.stack([pre, post1, post2, post1 - pre]) / scale
