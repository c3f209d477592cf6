"""Does the tumour mask's extent fit the tumour size on the clinical form? A caution and, when grossly
off, a second opinion on the choice.

Why: where the background parenchyma enhances moderately or markedly, the automatic outline can
spill into it (masks 3–5 × the tumour on another generator's exams, docs/segmentation.md) while
still containing the tumour, and a benign lesion chosen over the tumour is much smaller than the
stated size. Neither shows in the model's own confidence. The clinical size gives an independent
yardstick, in one of two forms:

- **the largest diameter only** (``tumour_size_mm``, from imaging or palpation): the mask's volume
  over a sphere of that diameter. True tumours of the project's two training generators lie at
  0.33–1.66 × that sphere (5th percentile to maximum, 440 exams; one outlier at 3.2), so a mask
  outside 0.25–2.5 × is flagged. The range is wide because a sphere over-states an elongated
  tumour's volume: a mask twice the tumour can still fit it.
- **three diameters** (the report's "25 × 18 × 20 mm": ``tumour_size_mm`` and the two perpendicular
  ``tumour_size_2_mm``, ``tumour_size_3_mm``): the mask's volume over the ellipsoid they span. The
  training generators' true tumours, measured as a reader would (``training.report_diameters``:
  the mass's moment ellipsoid, ± 10 % per diameter), fill 0.57 (5th percentile) / 0.90 (median) /
  1.43 (maximum) of it over 440 exams; the limits 0.43–1.79 (0.75 × the 5th percentile, 1.25 × the
  maximum) flag a mask twice a tumour that fills its ellipsoid to 0.9 or more, which the sphere's
  0.25–2.5 cannot.

The mask is flagged outside the limits and the user is asked to check its outline before relying
on anything computed from it. The numbers these limits give on held-out sets are in
docs/segmentation.md.

A card with an ``extent_choice`` (:class:`ExtentChoice`) also lets the size decide between the
ranker's first two candidates when the first misses the limits by more than a factor (a 9 ml blob for
a reported 5 cm tumour, a 40 ml outline for a 12 mm one) and the runner-up fits them: a radiologist
who measured the tumour would not accept the first, and the runner-up is the tumour whenever the
choice is wrong more often than any other candidate (docs/segmentation.md, "Close calls").

An ``extent_choice`` with a ``core_contrast`` first looks inside a choice above the upper limit for a piece
of the reported size that stands out in early uptake and washout (:func:`.outline.core_of_size`): a tumour
whose outline spilled into the parenchyma it touches is cut back to it rather than swapped away. The size
says where to look and whether the cut is plausible; the cut itself is read from the image (half-way
between the piece and the spill), never drawn as a sphere: a size is a reader's measurement, not a contour.

An ``extent_choice`` with ``grow_small`` does the opposite for a choice below the lower limit: a large
heterogeneous tumour whose network outline covers only its brightest part is grown over the enhancing tissue
connected to it that stands out from the breast beyond a tumour of the reported size
(:func:`.outline.grown_to_size`), when the grown outline fits the size.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from responseai.breast.constants import form_errors
from responseai.errors import ClinicalValueError
from responseai.image import Image

#: mask volume / volume of a sphere of the clinical size outside which the outline is flagged
EXTENT_LIMITS = (0.25, 2.5)
#: mask volume / volume of the ellipsoid of the three clinical diameters outside which it is flagged
ELLIPSOID_LIMITS = (0.43, 1.79)
SIZE, SECOND, THIRD = "tumour_size_mm", "tumour_size_2_mm", "tumour_size_3_mm"


@dataclass(frozen=True)
class Yardstick:
    """The volume the clinical measurements allow, what it is called, and the limits that go with it."""

    kind: str  # "sphere" (the largest diameter only) or "ellipsoid" (three diameters)
    volume_ml: float
    description: str  # "a 25 mm sphere" / "the 25 × 18 × 20 mm ellipsoid"
    limits: tuple[float, float]

    @property
    def typical_ml(self) -> float:
        """The volume a true tumour of these measurements typically has: the yardstick's volume times the
        geometric middle of its limits (a sphere over-states a tumour's volume, the moment ellipsoid barely):
        the tumour a choice far below the size is grown over (:func:`.outline.grown_to_size`)."""
        return self.volume_ml * math.sqrt(self.limits[0] * self.limits[1])


def sphere_volume_ml(diameter_mm: float) -> float:
    """Volume (ml) of a sphere of ``diameter_mm``."""
    return ellipsoid_volume_ml(diameter_mm, diameter_mm, diameter_mm)


def ellipsoid_volume_ml(a_mm: float, b_mm: float, c_mm: float) -> float:
    """Volume (ml) of an ellipsoid of diameters ``a``, ``b``, ``c`` (mm): π/6·abc."""
    return math.pi / 6.0 * float(a_mm) * float(b_mm) * float(c_mm) / 1000.0


def _diameter(value: object) -> float | None:
    """A usable diameter (finite, > 0) or None."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def yardstick(clinical: Mapping[str, object]) -> Yardstick | None:
    """The ellipsoid of the three diameters when all are known, else the sphere of the largest, else None."""
    size = _diameter(clinical.get(SIZE))
    if size is None:
        return None
    second, third = _diameter(clinical.get(SECOND)), _diameter(clinical.get(THIRD))
    if second is not None and third is not None:
        return Yardstick("ellipsoid", ellipsoid_volume_ml(size, second, third),
                         f"the {size:g} × {second:g} × {third:g} mm ellipsoid", ELLIPSOID_LIMITS)
    return Yardstick("sphere", sphere_volume_ml(size), f"a {size:g} mm sphere", EXTENT_LIMITS)


def extent_ratio(mask_volume_ml: float, clinical: Mapping[str, object]) -> float | None:
    """Mask volume over the clinical yardstick's; None when the form has no usable size."""
    stick = yardstick(clinical)
    return None if stick is None else float(mask_volume_ml) / stick.volume_ml


@dataclass(frozen=True)
class ExtentChoice:
    """Take the runner-up when the first choice misses the yardstick's limits by more than ``factor`` (above the
    upper limit: ``factor_above``, when given) and the runner-up fits them (the card's ``extent_choice``).

    Above and below differ in what a miss means: a choice far smaller than the reported tumour is another
    lesion or a fragment, while one larger than it may be the tumour with its outline spilled into the
    parenchyma around it, which a swap would lose (docs/segmentation.md).
    """

    factor: float
    factor_above: float | None = None
    core_contrast: float | None = None  # look for the tumour inside a grossly large first choice first (None: not)
    grow_small: bool = False  # grow a choice below the lower limit over the tumour it is part of (2.12.0's card)
    grow_below: float | None = None  # with grow_small: try the growth below this × the yardstick's volume too

    def __post_init__(self) -> None:
        for name, value in (("factor", self.factor), ("factor_above", self.factor_above),
                            ("core_contrast", self.core_contrast)):
            if value is not None and not 1 <= value <= 10:
                raise ValueError(f"extent_choice {name} must lie in [1, 10], got {value:g}")
        if self.grow_below is not None and not (0 < self.grow_below <= 1 and self.grow_small):
            raise ValueError(f"extent_choice grow_below must lie in (0, 1] and needs grow_small, got {self.grow_below:g}")

    @classmethod
    def from_card(cls, entry: Mapping) -> ExtentChoice:
        above, contrast, grow = entry.get("factor_above"), entry.get("core_contrast"), entry.get("grow_small", False)
        below = entry.get("grow_below")
        if not isinstance(grow, bool):
            raise ValueError(f"extent_choice grow_small must be true or false, got {grow!r}")
        return cls(float(entry["factor"]), None if above is None else float(above),
                   None if contrast is None else float(contrast), grow, None if below is None else float(below))

    def to_card(self) -> dict:
        entry = {"factor": self.factor}
        if self.factor_above is not None:
            entry["factor_above"] = self.factor_above
        if self.core_contrast is not None:
            entry["core_contrast"] = self.core_contrast
        if self.grow_small:
            entry["grow_small"] = True
        if self.grow_below is not None:
            entry["grow_below"] = self.grow_below
        return entry

    def grow_trigger(self, limits: tuple[float, float]) -> float:
        """The mask / yardstick ratio under which a choice is grown: the lower limit, or ``grow_below`` when higher.

        Why a second, higher trigger (2.13.0): partial outlines — a small tumour outlined at half its volume, a
        large one at a third — lie between the lower limit and the size, and the growth takes an outline only
        when the grown one fits the size anyway.
        """
        return limits[0] if self.grow_below is None else max(self.grow_below, limits[0])

    def grossly_above(self, ratio: float, limits: tuple[float, float]) -> bool:
        """Whether a mask / yardstick ``ratio`` lies above the upper limit by more than the factor."""
        return ratio > limits[1] * (self.factor if self.factor_above is None else self.factor_above)

    def grossly_off(self, ratio: float, limits: tuple[float, float]) -> bool:
        """Whether a mask / yardstick ``ratio`` lies beyond the limits by more than the factor."""
        return ratio < limits[0] / self.factor or self.grossly_above(ratio, limits)

    def take_runner_up(self, chosen_ml: float, runner_up_ml: float | None, stick: Yardstick | None) -> bool:
        """Whether the runner-up (outline of ``runner_up_ml``) replaces the choice (``chosen_ml``): never without
        a yardstick or a runner-up."""
        if stick is None or runner_up_ml is None:
            return False
        return (self.grossly_off(chosen_ml / stick.volume_ml, stick.limits)
                and fits(runner_up_ml / stick.volume_ml, stick.limits))


def fits(ratio: float, limits: tuple[float, float]) -> bool:
    """Whether a mask / yardstick ratio lies within the limits (the one test the caution and its evaluation share)."""
    return limits[0] <= ratio <= limits[1]


def extent_fits(mask_volume_ml: float, clinical: Mapping[str, object]) -> bool | None:
    """Whether the mask fits the clinical yardstick (None without one)."""
    stick = yardstick(clinical)
    return None if stick is None else fits(float(mask_volume_ml) / stick.volume_ml, stick.limits)


def extent_caution(mask_volume_ml: float, clinical: Mapping[str, object]) -> str | None:
    """A sentence for the user when the mask does not fit the clinical yardstick, else None."""
    stick = yardstick(clinical)
    if stick is None:
        return None
    ratio = float(mask_volume_ml) / stick.volume_ml
    if fits(ratio, stick.limits):
        return None
    if ratio > stick.limits[1]:
        return (f"the tumour mask ({mask_volume_ml:.1f} ml) is {ratio:.1f} × the volume of {stick.description} (the "
                f"clinical size): it may include enhancing parenchyma or a neighbouring structure; check its outline "
                f"before relying on the volume or the pCR prediction")
    return (f"the tumour mask ({mask_volume_ml:.1f} ml) is {ratio:.2f} × the volume of {stick.description} (the "
            f"clinical size): it may cover only part of the tumour or another lesion; check its outline before relying "
            f"on the volume or the pCR prediction")


def check_diameters(clinical: Mapping[str, object]) -> None:
    """Refuse a 2nd or 3rd diameter larger than the tumour size, which is the largest, or given without it
    (ClinicalValueError; the rule is the form's, :func:`responseai.breast.constants.form_errors`)."""
    errors = form_errors(clinical)
    if errors:
        raise ClinicalValueError("; ".join(errors.values()))


def principal_diameters_mm(mask: Image) -> tuple[float, float, float]:
    """The diameters (mm, largest first) of the ellipsoid with the mask's own second moments: a solid
    ellipsoid gives its three diameters exactly, and thin spicules or a lobe barely move them, as a
    radiologist's three perpendicular measurements of a mass leave its spicules out. Reported beside
    the mask's volume so that it can be set against the report's diameters."""
    points = np.argwhere(np.asarray(mask.array) > 0)[:, ::-1] * np.asarray(mask.spacing, float)  # i, j, k in mm
    if len(points) < 2:
        return (0.0, 0.0, 0.0)
    world = points @ np.asarray(mask.direction, float).T
    variances = np.linalg.eigvalsh(np.cov(world.T))[::-1]
    # a solid ellipsoid of semi-axis a has variance a²/5 along it; one voxel's own extent is added back
    voxel = np.asarray(mask.spacing, float).mean() ** 2 / 12
    d = 2 * np.sqrt(5 * (np.maximum(variances, 0) + voxel))
    return float(d[0]), float(d[1]), float(d[2])
