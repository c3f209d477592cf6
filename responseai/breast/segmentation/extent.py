"""Does the tumour mask's extent fit the tumour size on the clinical form? A caution, not a correction.

Why: where the background parenchyma enhances moderately or markedly, the automatic outline can
spill into it (masks 3–5 × the tumour on another generator's exams, docs/segmentation.md) while
still containing the tumour, and a benign lesion chosen over the tumour is much smaller than the
stated size. Neither shows in the model's own confidence. The clinical size (the largest diameter,
from imaging or palpation) gives an independent yardstick: the mask's volume over the volume of a
sphere of that diameter. True tumours of the project's two training generators lie at 0.33–1.66 ×
that sphere (5th percentile to maximum, 440 exams; one outlier at 3.2), so a mask outside
0.25–2.5 × is unlikely to be only the tumour and the user is asked to check its outline before
relying on anything computed from it. The numbers these limits give on held-out sets are in
docs/segmentation.md.
"""

from __future__ import annotations

import math

#: mask volume / volume of a sphere of the clinical size outside which the outline is flagged
EXTENT_LIMITS = (0.25, 2.5)


def sphere_volume_ml(diameter_mm: float) -> float:
    """Volume (ml) of a sphere of ``diameter_mm``."""
    return math.pi / 6.0 * float(diameter_mm) ** 3 / 1000.0


def extent_ratio(mask_volume_ml: float, tumour_size_mm: object) -> float | None:
    """Mask volume over the clinical size's sphere; None when the form has no usable size."""
    if not isinstance(tumour_size_mm, (int, float)) or isinstance(tumour_size_mm, bool):
        return None
    if not math.isfinite(tumour_size_mm) or tumour_size_mm <= 0:
        return None
    return float(mask_volume_ml) / sphere_volume_ml(tumour_size_mm)


def fits(ratio: float, limits: tuple[float, float] = EXTENT_LIMITS) -> bool:
    """Whether a mask / sphere ratio lies within the limits (the one test the caution and its evaluation share)."""
    return limits[0] <= ratio <= limits[1]


def extent_caution(mask_volume_ml: float, tumour_size_mm: object,
                   limits: tuple[float, float] = EXTENT_LIMITS) -> str | None:
    """A sentence for the user when the mask does not fit the clinical size, else None."""
    ratio = extent_ratio(mask_volume_ml, tumour_size_mm)
    if ratio is None or fits(ratio, limits):
        return None
    size = f"{float(tumour_size_mm):g} mm"
    if ratio > limits[1]:
        return (f"the tumour mask ({mask_volume_ml:.1f} ml) is {ratio:.1f} × the volume of a {size} sphere (the "
                f"clinical size): it may include enhancing parenchyma or a neighbouring structure; check its outline "
                f"before relying on the volume or the pCR prediction")
    return (f"the tumour mask ({mask_volume_ml:.1f} ml) is {ratio:.2f} × the volume of a {size} sphere (the clinical "
            f"size): it may cover only part of the tumour or another lesion; check its outline before relying on the "
            f"volume or the pCR prediction")
