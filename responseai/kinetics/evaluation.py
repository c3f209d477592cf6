"""``responseai evaluate kinetics``: the kinetic analysis against the phantom's truth.

    responseai evaluate kinetics --n 40 --seed 7 --out DIR [--bspline]

For every phantom case (:mod:`responseai.kinetics.phantom`), every lesion is analysed in its
own VOI: the majority class of its classified voxels against the generator's kinetic type, and
the FTV against the true enhancing volume. The follow-up is registered to the baseline and
analysed as ``responseai predict kinetics`` does: registration error = the largest distance,
over the baseline ROI's voxels, between where the estimated and the true transform put them;
ΔFTV against the true change. The follow-up's shrinkage follows each case's pCR label, so the
measured ΔFTV is also read as I-SPY reads FTV: median ΔFTV of the pCR and non-pCR groups and
the ROC AUC of −ΔFTV for pCR (bootstrap 95 % CI over cases). Writes ``lesions.csv``,
``cases.csv`` and ``summary.json`` (with the acceptance checks), and logs the summary table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from responseai.kinetics.analysis import KineticsConfig, analyse_exam
from responseai.kinetics.inference import predict_kinetics
from responseai.kinetics.phantom import KineticsCase, generate_case, lesion_voi, voxel_points
from responseai.kinetics.registration import transform_error_mm
from responseai.metrics import auc_metric, bootstrap
from responseai.outputs import json_safe, staged_output_dir

log = logging.getLogger(__name__)

TOLERANCE = 0.10  # FTV and ΔFTV within 10 % of the truth
N_BOOTSTRAP = 2000  # resamples of the cases for the CI of the pCR AUC


def _percent_error(measured: float, truth: float) -> float:
    """100 · (measured − truth) / truth; NaN when nothing is truly enhancing (a relative error is undefined)."""
    return 100 * (measured - truth) / truth if truth > 0 else float("nan")


def lesion_rows(case: KineticsCase, config: KineticsConfig) -> list[dict]:
    """Each baseline lesion in its own VOI: measured majority class / worst curve / FTV vs truth."""
    rows = []
    for index, kinetic_type in enumerate(case.kinetic_types):
        _, _, _, summary = analyse_exam(case.baseline.phases, lesion_voi(case.baseline.lesion_labels, index), config)
        truth = case.baseline.true_enhancing_ml[index]
        rows.append({"patient_id": case.patient_id, "lesion": index, "kinetic_type": kinetic_type,
                     "majority_class": summary["majority_class"], "worst_curve": summary["worst_curve"],
                     "true_ftv_ml": truth, "ftv_ml": summary["ftv_ml"],
                     "ftv_error_percent": _percent_error(summary["ftv_ml"], truth)})
    return rows


def case_row(case: KineticsCase, config: KineticsConfig, bspline: bool) -> dict:
    """The index lesion's baseline → follow-up comparison and the registration error."""
    result = predict_kinetics(case.baseline.phases, case.baseline.mask, case.followup.phases, case.followup.mask,
                              config, bspline=bspline)
    roi = case.baseline.mask
    errors = transform_error_mm(result.followup.registration.transform, case.transform,
                                voxel_points(roi)[roi.array.ravel() > 0])
    followup_truth = case.followup.true_enhancing_ml[0]
    measured, truth = result.followup.changes["delta_ftv_percent"], case.truth["true_delta_ftv_percent"]
    followup_ftv = result.followup.timepoint.summary["ftv_ml"]
    return {"patient_id": case.patient_id, "pcr": int(case.pcr), "response": case.response,
            "orientation": f"{case.baseline.orientation}→{case.followup.orientation}",
            "registration_error_max_mm": float(errors.max()), "registration_error_mean_mm": float(errors.mean()),
            "voxel_mm": float(min(roi.spacing)),
            "followup_ftv_ml": followup_ftv, "followup_true_ftv_ml": followup_truth,
            "followup_ftv_error_percent": _percent_error(followup_ftv, followup_truth),
            "followup_ftv_error_ml": followup_ftv - followup_truth,
            "delta_ftv_percent": measured, "true_delta_ftv_percent": truth,
            "delta_ftv_error_points": measured - truth}


def _ftv_check(errors: np.ndarray) -> dict:
    """Share of FTVs within 10 % of the truth, with the count and the median / largest absolute error (%)."""
    errors = np.abs(errors[np.isfinite(errors)])
    if not len(errors):
        return {"n": 0}
    return {"n": int(len(errors)), "within_10_percent": float(np.mean(errors <= 100 * TOLERANCE)),
            "abs_error_percent_median": float(np.median(errors)), "abs_error_percent_max": float(errors.max())}


def _delta_errors(cases: pd.DataFrame) -> dict:
    """Absolute ΔFTV errors (percentage points) with the count."""
    errors = np.abs(cases["delta_ftv_error_points"].to_numpy(float))
    if not len(errors):
        return {"n": 0}
    return {"n": int(len(errors)), "abs_error_points_median": float(np.median(errors)),
            "abs_error_points_max": float(errors.max())}


def _shrinking_check(cases: pd.DataFrame) -> dict:
    """ΔFTV within 10 % of the true change: a relative tolerance that means something only for a large true change."""
    ok = np.abs(cases["delta_ftv_error_points"]) <= TOLERANCE * np.abs(cases["true_delta_ftv_percent"])
    return {**_delta_errors(cases), **({"within_10_percent_of_true_change": float(np.mean(ok))} if len(cases) else {})}


def pcr_separation(cases: pd.DataFrame, n_boot: int = N_BOOTSTRAP) -> dict:
    """Measured ΔFTV by pCR group and the ROC AUC of −ΔFTV for pCR.

    The sign follows I-SPY's reading of FTV: the larger the drop, the more likely a pCR.
    """
    pcr = cases["pcr"].to_numpy(int)
    delta = cases["delta_ftv_percent"].to_numpy(float)
    summary: dict = {}
    for name, label in (("pcr", 1), ("no_pcr", 0)):
        group = delta[pcr == label]
        summary[f"{name}_n"] = int(len(group))
        summary[f"{name}_median_delta_ftv_percent"] = float(np.median(group)) if len(group) else None
    summary["auc_of_minus_delta_ftv"] = bootstrap(auc_metric, (pcr, -delta), n_boot)["auc"] \
        if len(np.unique(pcr)) == 2 else None
    return summary


def summarise(lesions: pd.DataFrame, cases: pd.DataFrame) -> dict:
    """The acceptance numbers (shares of lesions / cases) with their counts.

    A pCR's residual is a few voxels (0.1–0.7 ml on the phantom), where partial volume alone moves
    the FTV by tens of percent; its FTV error is therefore reported apart from the check over
    baseline lesions and non-pCR follow-ups, and also in ml.
    """
    pcr = cases["pcr"] == 1
    within_voxel = cases["registration_error_max_mm"] <= cases["voxel_mm"]
    by_orientation = {name: {"n": int(len(group)), "within_one_voxel": float(np.mean(
        group["registration_error_max_mm"] <= group["voxel_mm"])), "max_error_mm": float(group[
            "registration_error_max_mm"].max())} for name, group in cases.groupby("orientation")}
    residual_ml = np.abs(cases.loc[pcr, "followup_ftv_error_ml"])
    return {
        "n_cases": int(len(cases)), "n_lesions": int(len(lesions)),
        "majority_class_matches_type": float(np.mean(lesions["majority_class"] == lesions["kinetic_type"])),
        "worst_curve_matches_type": float(np.mean(lesions["worst_curve"] == lesions["kinetic_type"])),
        "ftv_baseline_and_no_pcr_followup": _ftv_check(np.concatenate(
            [lesions["ftv_error_percent"], cases.loc[~pcr, "followup_ftv_error_percent"]])),
        "ftv_all_including_pcr_residuals": _ftv_check(np.concatenate(
            [lesions["ftv_error_percent"], cases["followup_ftv_error_percent"]])),
        "ftv_pcr_residual": {**_ftv_check(cases.loc[pcr, "followup_ftv_error_percent"].to_numpy(float)),
                             "abs_error_ml_median": float(np.median(residual_ml)) if len(residual_ml) else None,
                             "abs_error_ml_max": float(residual_ml.max()) if len(residual_ml) else None},
        "registration_error_max_mm_median": float(cases["registration_error_max_mm"].median()),
        "registration_error_max_mm_worst": float(cases["registration_error_max_mm"].max()),
        "registration_within_one_voxel": float(np.mean(within_voxel)),
        "registration_by_orientation": by_orientation,
        "delta_ftv_shrinking": _shrinking_check(cases[cases["response"] == "shrinking"]),
        "delta_ftv_non_shrinking": _delta_errors(cases[cases["response"] != "shrinking"]),
        "delta_ftv_by_pcr": pcr_separation(cases),
    }


def evaluate(n: int, seed: int, bspline: bool = False, config: KineticsConfig | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    config = config or KineticsConfig()
    lesions, cases = [], []
    for index in range(n):
        case = generate_case(seed, index)
        lesions += lesion_rows(case, config)
        cases.append(case_row(case, config, bspline))
        log.info("case %d/%d %s done", index + 1, n, case.patient_id)
    lesions_frame, cases_frame = pd.DataFrame(lesions), pd.DataFrame(cases)
    return lesions_frame, cases_frame, summarise(lesions_frame, cases_frame)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="responseai evaluate kinetics", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=40, help="phantom cases (default 40)")
    parser.add_argument("--seed", type=int, default=7, help="phantom cohort seed (default 7)")
    parser.add_argument("--bspline", action="store_true", help="rigid + B-spline registration")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lesions, cases, summary = evaluate(args.n, args.seed, args.bspline)
    summary = {"seed": args.seed, "bspline": args.bspline, **summary}
    with staged_output_dir(args.out) as staging:
        lesions.to_csv(staging / "lesions.csv", index=False)
        cases.to_csv(staging / "cases.csv", index=False)
        (staging / "summary.json").write_text(json.dumps(json_safe(summary), indent=2) + "\n", encoding="utf-8")
    log.info("summary:\n%s", json.dumps(json_safe(summary), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
