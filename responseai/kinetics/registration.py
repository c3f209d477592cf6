"""Bring a later exam onto the baseline: SimpleITK rigid registration (optional B-spline refinement).

Fixed = baseline post1, moving = follow-up post1 (the phase with the most structure: enhancing
parenchyma, vessels, the lesion). The transform maps a baseline point to the follow-up point
showing the same anatomy, as SimpleITK's resampling wants it. The starting point is the scanner
frame (identity in physical space, rotations about the baseline lesion's centre): exams of one
patient on one scanner share it to within centimetres, which the coarse level absorbs, and a
follow-up that does not even overlap the baseline is refused rather than pulled onto it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from responseai.errors import GeometryMismatchError
from responseai.image import Image
from responseai.io import from_sitk, to_sitk, volumes_overlap
from responseai.spatial import mask_centre_world

log = logging.getLogger(__name__)

MIN_ROI_COVERAGE = 0.5  # share of the baseline ROI the registered follow-up must image
SAMPLING_SEED = 20261201  # fixed metric sampling: the same inputs give the same transform


class RegistrationError(GeometryMismatchError):
    """The follow-up cannot be put onto the baseline (no overlap before or after registration)."""


@dataclass
class Registration:
    """The baseline → follow-up transform and how well it worked."""

    transform: sitk.Transform
    metric: float  # final Mattes mutual information (lower is better)
    roi_coverage: float  # share of the baseline ROI inside the follow-up's field of view
    bspline: bool

    def record(self) -> dict:
        rigid = self.rigid()
        return {"rotation_deg": [float(np.degrees(a)) for a in (rigid.GetAngleX(), rigid.GetAngleY(), rigid.GetAngleZ())],
                "translation_mm": [float(t) for t in rigid.GetTranslation()],
                "centre_mm": [float(c) for c in rigid.GetCenter()],
                "final_metric": self.metric, "roi_coverage": self.roi_coverage, "bspline": self.bspline}

    def rigid(self) -> sitk.Euler3DTransform:
        """The rigid part (the whole transform without B-spline)."""
        transform = self.transform
        if isinstance(transform, sitk.CompositeTransform):
            transform = transform.GetNthTransform(0)
        return sitk.Euler3DTransform(transform)


def _method(sampling: float) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.REGULAR)
    method.SetMetricSamplingPercentage(sampling, SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return method


def register_followup(baseline: Image, followup: Image, baseline_roi: Image, bspline: bool = False) -> Registration:
    """Rigid (then optionally B-spline) registration of the follow-up post1 onto the baseline post1."""
    if not volumes_overlap(baseline, followup):
        raise RegistrationError("the follow-up exam does not overlap the baseline exam in physical space: check that "
                                "both are breast DCE series of the same patient (same frame of reference)")
    fixed = sitk.Cast(to_sitk(baseline), sitk.sitkFloat32)
    moving = sitk.Cast(to_sitk(followup), sitk.sitkFloat32)
    initial = sitk.Euler3DTransform()
    initial.SetCenter(tuple(float(c) for c in mask_centre_world(baseline_roi)))
    method = _method(0.25)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=200,
                                                    relaxationFactor=0.6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(initial, inPlace=True)
    try:
        method.Execute(fixed, moving)
        rigid = initial
        metric = method.GetMetricValue()
        transform: sitk.Transform = rigid
        if bspline:
            transform, metric = _bspline(fixed, moving, rigid)
    except RuntimeError as exc:  # e.g. "All samples map outside moving image buffer"
        reason = str(exc).strip().splitlines()[-1]
        raise RegistrationError(f"the follow-up could not be registered to the baseline ({reason}): the exams share "
                                "too little of the same anatomy") from exc
    coverage = roi_coverage(baseline_roi, followup, transform)
    log.info("registration: metric %.4f, ROI coverage %.0f %%", metric, 100 * coverage)
    if coverage < MIN_ROI_COVERAGE:
        raise RegistrationError(f"after registration only {coverage:.0%} of the baseline lesion ROI lies inside the "
                                f"follow-up's field of view ({MIN_ROI_COVERAGE:.0%} needed): the exams do not show the "
                                "same region")
    return Registration(transform, float(metric), coverage, bspline)


def _bspline(fixed: sitk.Image, moving: sitk.Image, rigid: sitk.Euler3DTransform) -> tuple[sitk.Transform, float]:
    """A coarse B-spline (mesh 3 per axis, half resolution) on top of the rigid result, for breast deformation.

    Deliberately small (192 parameters, 30 iterations): seconds, not minutes, and too coarse to
    shrink a lesion into agreement with the baseline (which would hide the response).
    """
    grid = sitk.BSplineTransformInitializer(fixed, [3, 3, 3])
    method = _method(0.1)
    method.SetShrinkFactorsPerLevel([2])
    method.SetSmoothingSigmasPerLevel([1.0])
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=30)
    method.SetMovingInitialTransform(rigid)
    method.SetInitialTransform(grid, inPlace=True)
    method.Execute(fixed, moving)
    composite = sitk.CompositeTransform(rigid)
    composite.AddTransform(grid)
    return composite, method.GetMetricValue()


def roi_coverage(baseline_roi: Image, followup: Image, transform: sitk.Transform) -> float:
    """Share of the baseline ROI voxels whose transformed centre falls inside the follow-up grid."""
    support = followup.with_array(np.ones(followup.shape, np.uint8))
    mapped = resample_onto(support, baseline_roi, transform, is_label=True)
    inside = baseline_roi.array > 0
    return float(np.count_nonzero(mapped.array[inside])) / max(int(inside.sum()), 1)


def resample_onto(image: Image, reference: Image, transform: sitk.Transform, is_label: bool = False) -> Image:
    """A follow-up image on the baseline grid through the registration (nearest neighbour for labels)."""
    interpolator = sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear
    out = sitk.Resample(to_sitk(image), to_sitk(reference), transform, interpolator, 0.0)
    return from_sitk(out)


def map_roi_to_followup(baseline_roi: Image, followup: Image, registration: Registration) -> Image:
    """The baseline ROI on the follow-up grid (the inverse of the rigid part), when no follow-up ROI is given."""
    inverse = registration.rigid().GetInverse()
    return resample_onto(baseline_roi, followup.with_array(np.zeros(followup.shape, np.uint8)), inverse, is_label=True)


def transform_error_mm(estimated: sitk.Transform, truth: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """|estimated(p) − truth(p)| in mm for each LPS point (rows of ``points``)."""
    return np.array([np.linalg.norm(np.subtract(estimated.TransformPoint(tuple(map(float, p))),
                                                truth.TransformPoint(tuple(map(float, p))))) for p in points])
