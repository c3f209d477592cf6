"""The phantom's truth is recovered: kinetic type, FTV, the follow-up's pose (any orientation), ΔFTV; bad pairs refused."""

from __future__ import annotations

import time

import numpy as np
import pytest

from responseai.kinetics.analysis import KineticsConfig, analyse_exam
from responseai.kinetics.inference import predict_kinetics
from responseai.kinetics.longitudinal import PatientMismatchError
from responseai.kinetics.phantom import generate_case, lesion_voi, voxel_points
from responseai.kinetics.registration import RegistrationError, transform_error_mm


def test_phantom_is_deterministic_quick_and_in_the_stated_orientations():
    start = time.perf_counter()
    case = generate_case(0, 36)
    elapsed = time.perf_counter() - start
    again = generate_case(0, 36)
    assert elapsed < 3.0  # ≈ 0.6 s on an idle core; margin for a shared CI machine
    assert np.array_equal(case.followup.phases["post2"].array, again.followup.phases["post2"].array)
    assert case.baseline.orientation == "RAS" and case.followup.orientation == "sagittal"
    assert np.allclose(case.followup.phases["pre"].direction, [[0, 0, 1], [1, 0, 0], [0, -1, 0]])
    assert case.kinetic_types == ["washout", "persistent"] and case.pcr and case.response == "shrinking"
    assert case.truth["true_delta_ftv_percent"] < -50  # a pCR: lesion 0 shrinks strongly


def test_every_lesion_has_its_type_and_volume(kinetics_case):
    config = KineticsConfig()
    exam = kinetics_case.baseline
    for index, kinetic_type in enumerate(kinetics_case.kinetic_types):
        _, _, _, summary = analyse_exam(exam.phases, lesion_voi(exam.lesion_labels, index), config)
        assert summary["majority_class"] == kinetic_type
        assert summary["ftv_ml"] == pytest.approx(exam.true_enhancing_ml[index], rel=0.10)


def test_followup_pose_and_shrinkage_are_recovered(kinetics_case):
    case = kinetics_case
    result = predict_kinetics(case.baseline.phases, case.baseline.mask, case.followup.phases, None,
                              patient_id="P1", followup_patient_id="P1")
    roi = case.baseline.mask
    errors = transform_error_mm(result.followup.registration.transform, case.transform,
                                voxel_points(roi)[roi.array.ravel() > 0])
    assert errors.max() < min(roi.spacing)  # within one (the smallest) voxel, RAS baseline vs sagittal follow-up
    assert result.followup.roi_source == "baseline ROI through the registration"
    truth = case.truth["true_delta_ftv_percent"]
    assert result.followup.changes["delta_ftv_percent"] == pytest.approx(truth, rel=0.10)
    assert result.followup.changes["delta_longest_diameter_mm"] < 0
    grid = result.baseline.maps.pe
    assert not result.followup.timepoint.maps.kinetic_class.grid_differences(grid)  # follow-up maps on the baseline grid


def test_bad_timepoint_pairs_are_refused(kinetics_case):
    case = kinetics_case
    with pytest.raises(PatientMismatchError, match="patient 'P1' but the follow-up is of 'P2'"):
        predict_kinetics(case.baseline.phases, case.baseline.mask, case.followup.phases, case.followup.mask,
                         patient_id="P1", followup_patient_id="P2")
    far = {name: image.__class__(image.array, image.spacing, tuple(np.add(image.origin, 500.0)), image.direction)
           for name, image in case.followup.phases.items()}
    with pytest.raises(RegistrationError, match="does not overlap the baseline"):
        predict_kinetics(case.baseline.phases, case.baseline.mask, far, None)
    with pytest.raises(Exception, match="follow-up exam: .*missing: post2"):
        predict_kinetics(case.baseline.phases, case.baseline.mask, {**case.followup.phases, "post2": None}, None)



def _crop_k(image, start: int, stop: int):
    """Slices ``start:stop`` along the image's k axis, geometry kept (origin moved along k)."""
    origin = np.asarray(image.origin) + image.direction[:, 2] * image.spacing[2] * start
    return image.__class__(np.ascontiguousarray(image.array[start:stop]), image.spacing, tuple(origin), image.direction)


def test_a_followup_that_misses_the_lesion_is_refused_after_registration(kinetics_case):
    """The exams overlap, but the follow-up's field of view (a slab away from the lesion) does not image its ROI."""
    case = kinetics_case
    lesion_k = np.nonzero(case.followup.mask.array.any(axis=(1, 2)))[0]
    n_k = case.followup.mask.shape[0]
    start, stop = (0, lesion_k.min() - 8) if lesion_k.min() > n_k - lesion_k.max() else (lesion_k.max() + 8, n_k)
    assert stop - start >= 16
    slab = {name: _crop_k(image, start, stop) for name, image in case.followup.phases.items()}
    with pytest.raises(RegistrationError, match="only 0% of the baseline lesion ROI lies inside the follow-up"):
        predict_kinetics(case.baseline.phases, case.baseline.mask, slab, None)
