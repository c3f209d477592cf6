"""Baseline → early-treatment comparison: register the later exam, analyse it, ΔFTV, ΔPE, Δdiameter.

The follow-up's numbers (FTV, diameters, class shares) are measured on its *own* grid, so a
volume never depends on interpolation; the registration serves the voxel-wise display (its
maps resampled onto the baseline grid) and, when no follow-up ROI is given, carries the
baseline ROI over to the follow-up (the same anatomy, through the rigid part). ΔFTV % is
100 · (FTV_followup − FTV_baseline) / FTV_baseline; ΔPE is the change of the mean PE over the
FTV in percentage points; Δdiameter is the change of the FTV's longest diameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from responseai.errors import ResponseAIError
from responseai.image import Image
from responseai.kinetics.analysis import KineticMaps, KineticsConfig, analyse_exam, require_phases
from responseai.kinetics.registration import Registration, map_roi_to_followup, register_followup, resample_onto


class PatientMismatchError(ResponseAIError):
    """The two timepoints carry different patient identifiers."""


@dataclass
class Timepoint:
    """One exam's checked phases, ROI, maps (on the baseline grid) and ROI summary (on its own grid)."""

    phases: dict[str, Image]
    roi: Image
    maps: KineticMaps
    summary: dict


@dataclass
class FollowUp:
    """The later exam, its registration to the baseline and the changes."""

    timepoint: Timepoint
    registration: Registration
    roi_source: str  # "given" or "baseline ROI through the registration"
    changes: dict


def check_same_patient(baseline_id: str | None, followup_id: str | None) -> None:
    """Refuse two exams whose patient IDs are both known and differ (an exam of another patient)."""
    if baseline_id and followup_id and baseline_id.strip() != followup_id.strip():
        raise PatientMismatchError(f"the baseline exam is of patient '{baseline_id}' but the follow-up is of "
                                   f"'{followup_id}': a response is only measured between two exams of one patient")


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def changes(baseline: Mapping, followup: Mapping) -> dict:
    """ΔFTV (ml and %), ΔPE (points), Δ longest diameter (mm and %) between two ROI summaries."""
    ftv0, ftv1 = baseline["ftv_ml"], followup["ftv_ml"]
    ld0, ld1 = baseline["longest_diameter_ftv_mm"], followup["longest_diameter_ftv_mm"]
    return {
        "delta_ftv_ml": ftv1 - ftv0,
        "delta_ftv_percent": 100.0 * (ftv1 - ftv0) / ftv0 if ftv0 > 0 else None,
        "delta_mean_pe_ftv": _difference(followup["mean_pe_ftv"], baseline["mean_pe_ftv"]),
        "delta_peak_pe": followup["peak_pe"] - baseline["peak_pe"],
        "delta_longest_diameter_mm": ld1 - ld0,
        "delta_longest_diameter_percent": 100.0 * (ld1 - ld0) / ld0 if ld0 > 0 else None,
        "worst_curve": [baseline["worst_curve"], followup["worst_curve"]],
    }


def analyse_followup(baseline: Timepoint, phases: Mapping[str, Image | None], roi: Image | None,
                     config: KineticsConfig, bspline: bool = False, resample: bool = False) -> FollowUp:
    """Register the follow-up onto the baseline, analyse it on its own grid, map its maps onto the baseline grid."""
    require_phases(phases, "follow-up")  # its own message already names the exam
    reference = phases["post1"]
    registration = register_followup(baseline.phases["post1"], reference, baseline.roi, bspline)
    roi_source = "given"
    if roi is None:
        roi = map_roi_to_followup(baseline.roi, reference, registration)
        roi_source = "baseline ROI through the registration"
    try:
        images, own_roi, maps, summary = analyse_exam(phases, roi, config, resample, "follow-up")
    except ResponseAIError as exc:  # the same specific error, saying which exam it is about
        raise type(exc)(f"follow-up exam: {exc}") from exc
    grid = baseline.phases["post1"]
    on_baseline = KineticMaps(resample_onto(maps.pe, grid, registration.transform),
                              resample_onto(maps.ser, grid, registration.transform),
                              resample_onto(maps.kinetic_class, grid, registration.transform, is_label=True),
                              resample_onto(images["pre"].with_array(maps.assessable.astype("uint8")), grid,
                                            registration.transform, is_label=True).array > 0,
                              maps.background_level)
    return FollowUp(Timepoint(images, own_roi, on_baseline, summary), registration, roi_source,
                    changes(baseline.summary, summary))
