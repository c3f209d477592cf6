"""The phantom's follow-up follows its pCR label (issue 13), and the evaluation reads ΔFTV as I-SPY does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from responseai.kinetics.evaluation import pcr_separation, summarise
from responseai.kinetics.phantom import generate_case

N_CASES = 8  # ≈ 0.3 s each


@pytest.fixture(scope="module")
def cases():
    return [generate_case(7, index) for index in range(N_CASES)]


def test_the_response_follows_the_pcr_label(cases):
    labels = [case.pcr for case in cases]
    assert any(labels) and not all(labels)  # both groups in the first cases of seed 7
    for case in cases:
        delta = case.truth["true_delta_ftv_percent"]
        assert case.truth["pcr"] == case.pcr
        if case.pcr:
            assert case.response == "shrinking" and delta < -60
        else:
            assert case.response == "non-shrinking" and -60 < delta < 5  # stable or mild shrinkage (± the grids)
        assert case.followup.true_enhancing_ml[1:] == pytest.approx(case.baseline.true_enhancing_ml[1:], rel=0.1)


def _cases_frame(pcr: list[int], delta: list[float]) -> pd.DataFrame:
    n = len(pcr)
    return pd.DataFrame({"pcr": pcr, "response": ["shrinking" if p else "non-shrinking" for p in pcr],
                         "delta_ftv_percent": delta, "true_delta_ftv_percent": delta,
                         "delta_ftv_error_points": np.zeros(n), "followup_ftv_error_percent": np.zeros(n),
                         "followup_ftv_error_ml": np.zeros(n), "registration_error_max_mm": np.full(n, 0.2),
                         "voxel_mm": np.full(n, 1.25), "orientation": ["LPS→LPS"] * n})


def test_pcr_separation_groups_and_auc():
    frame = _cases_frame([1, 1, 0, 0, 0], [-90.0, -40.0, -50.0, -10.0, 5.0])
    result = pcr_separation(frame, n_boot=50)
    assert (result["pcr_n"], result["no_pcr_n"]) == (2, 3)
    assert result["pcr_median_delta_ftv_percent"] == pytest.approx(-65.0)
    assert result["no_pcr_median_delta_ftv_percent"] == pytest.approx(-10.0)
    assert result["auc_of_minus_delta_ftv"]["value"] == pytest.approx(5 / 6)  # −40 ranks below one non-pCR (−50)
    assert pcr_separation(_cases_frame([0, 0], [-5.0, 1.0]), n_boot=5)["auc_of_minus_delta_ftv"] is None


def test_summary_keeps_pcr_residuals_apart_from_the_ftv_check():
    cases = _cases_frame([1, 0], [-90.0, -10.0]).assign(followup_ftv_error_percent=[-40.0, 2.0],
                                                        followup_ftv_error_ml=[-0.1, 0.04])
    lesions = pd.DataFrame({"kinetic_type": ["washout", "plateau"], "majority_class": ["washout", "plateau"],
                            "worst_curve": ["washout", "plateau"], "ftv_error_percent": [1.0, -3.0]})
    summary = summarise(lesions, cases)
    assert summary["ftv_baseline_and_no_pcr_followup"]["n"] == 3
    assert summary["ftv_baseline_and_no_pcr_followup"]["within_10_percent"] == 1.0
    assert summary["ftv_all_including_pcr_residuals"]["within_10_percent"] == pytest.approx(3 / 4)
    assert summary["ftv_pcr_residual"]["abs_error_ml_max"] == pytest.approx(0.1)
    assert summary["delta_ftv_shrinking"]["n"] == 1 and summary["delta_ftv_non_shrinking"]["n"] == 1
